"""Starting long-lived local processes that outlive whoever started them (standard library only)."""
import os


def detach() -> None:
    """Double fork: the caller's parent waits only for the first process; the survivor runs in a session and a
    process group of its own, adopted by init, whatever happens to the worker that started it. Killing the group
    then stops everything it starts."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.setpgid(0, 0)
