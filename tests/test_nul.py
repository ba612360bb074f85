"""NUL characters in a URL, a query or a form field are refused (404 / 400) before PostgreSQL sees them."""
import pytest
from django.urls import reverse

from models_registry.models import RegisteredModel

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/models/%00/", "/models/titanic%00/edit/", "/endpoints/%00/", "/%00"])
def test_a_nul_in_the_path_is_not_found(engineer_client, path):
    assert engineer_client.get(path).status_code == 404


@pytest.mark.parametrize("query", ["q=%00", "q=titanic%00", "%00=1"])
def test_a_nul_in_the_query_is_a_bad_request(engineer_client, query):
    response = engineer_client.get(reverse("models_registry:model_list") + "?" + query)
    assert response.status_code == 400


def test_a_nul_in_a_form_field_is_a_bad_request_and_saves_nothing(engineer_client, engineer):
    model = RegisteredModel.objects.create(name="titanic", created_by=engineer, description="before")
    response = engineer_client.post(reverse("models_registry:model_edit", args=["titanic"]),
                                    {"description": "after\x00", "key_metric": "cv_accuracy"})
    assert response.status_code == 400
    model.refresh_from_db()
    assert model.description == "before"


def test_a_nul_is_refused_before_sign_in_too(client):
    assert client.get("/models/?q=%00").status_code == 400
