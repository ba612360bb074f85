"""Configurations as versioned documents: the deployment profiles, endpoints' policies, functional test cases and
stress profiles that decide how models are served and judged. Admins edit, compare and revert them here (every save a
revision, with a note); everyone else reads them."""
