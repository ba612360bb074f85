"""mlops-portal: the portal's command-line client, for pipelines (README, "Command line")."""
