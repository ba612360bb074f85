"""How the schema (drf-spectacular) describes the API's two ways to authenticate."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension

from mlopsportal.lib.problem_types import PROBLEM_KINDS, problem_type


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.auth.BearerTokenAuthentication"
    name = "token"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "mlp_<id>_<secret>",
                "description": "An API token, made under Settings → API tokens."}


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "api.auth.SessionAuthentication"
    name = "session"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid",
                "description": "The portal's sign-in session (the docs page); writes need the CSRF token."}


PROBLEM = {
    "type": "object", "required": ["type", "title", "status", "detail"],
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string", "enum": [problem_type(kind) for kind in PROBLEM_KINDS],
                 "description": "The kind of problem, a tag URI: `tag:mlops-portal,2026:problem:<kind>`."},
        "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "required": ["field", "message"], "properties": {
            "field": {"type": "string", "description": "The field at fault (dotted path); empty: the request."},
            "message": {"type": "string"}}}},
    },
}
ERRORS = {
    "400": "Invalid input: the fields at fault in `errors`", "401": "No token, or one that is not valid",
    "403": "The role or the token's scope may not do this", "404": "No such route or row",
    "405": "Method not allowed", "406": "Not acceptable", "409": "Refused by the portal's rules in this state",
    "415": "Only JSON bodies", "422": "Idempotency-Key reused for another request",
    "429": "The token's rate limit", "502": "The ML platform refused", "503": "The task queue is unreachable",
}


def problem_responses(result, generator, request, public):
    """Every operation may answer the problems of api.problems: say so, so clients and fuzzers know them."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM
    body = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for code, text in ERRORS.items():
                responses.setdefault(code, {"description": text, "content": body})
    return result
