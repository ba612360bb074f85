"""The deployments app's models, by room: serving, verification, promotions (one app label, one migration history)."""
from .promotions import Promotion, PromotionStep
from .releases import ReleaseEvent
from .serving import (
    DEPLOYMENT_NAME_VALIDATOR,
    ENDPOINT_NAME_VALIDATOR,
    INSTANCE_TYPE_VALIDATOR,
    Deployment,
    DeploymentProfile,
    Endpoint,
    new_endpoint_key,
)
from .verification import (
    CapacityProposal,
    CapacityTest,
    FunctionalTestCase,
    FunctionalTestRun,
    StressProfile,
    StressRun,
    StressShard,
    TestOutcome,
)

__all__ = [
    "CapacityProposal", "CapacityTest",
    "DEPLOYMENT_NAME_VALIDATOR", "ENDPOINT_NAME_VALIDATOR", "INSTANCE_TYPE_VALIDATOR", "Deployment", "DeploymentProfile", "Endpoint",
    "FunctionalTestCase", "FunctionalTestRun", "Promotion", "PromotionStep", "ReleaseEvent", "StressProfile", "StressRun",
    "StressShard", "TestOutcome", "new_endpoint_key",
]
