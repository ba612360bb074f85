"""Django's ModelBackend with each user's permissions and roles cached between requests.

Working out a user's permissions takes two joined queries on every request; the result only changes when someone
edits users, groups or permissions. Every such edit bumps a generation number in the cache (see signals.py), which
retires every cached entry at once, so a revoked role takes effect on the next request in every process that shares
the cache.
"""
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache

GENERATION_KEY = "auth:perm-generation"
TTL_SECONDS = 600


def generation() -> int:
    value = cache.get(GENERATION_KEY)
    if value is None:
        cache.add(GENERATION_KEY, 1, timeout=None)
        value = cache.get(GENERATION_KEY, 1)
    return value


def bump_generation() -> None:
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:  # not set yet (or evicted): any new value retires old entries
        cache.set(GENERATION_KEY, 1, timeout=None)
        cache.incr(GENERATION_KEY)


def cached_user_facts(user_obj) -> dict:
    """{"perms": set of "app.codename", "groups": list of group names}, cached per user and generation."""
    facts = getattr(user_obj, "_portal_facts", None)
    if facts is None:
        key = f"auth:facts:{user_obj.pk}:{generation()}"
        facts = cache.get(key)
        if facts is None:
            facts = {
                "perms": ModelBackend().get_all_permissions(user_obj),
                "groups": sorted(user_obj.groups.values_list("name", flat=True)),
            }
            cache.set(key, facts, TTL_SECONDS)
        user_obj._portal_facts = facts
    return facts


class CachedPermissionBackend(ModelBackend):
    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if user_obj.is_superuser:
            return super().get_all_permissions(user_obj, obj)
        if not hasattr(user_obj, "_perm_cache"):
            user_obj._perm_cache = set(cached_user_facts(user_obj)["perms"])
        return user_obj._perm_cache
