"""core.web.form_action: how every page answers a service call (message and redirect, or errors on the form)."""

from django import forms
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.http import HttpResponse
from django.test import RequestFactory

from core.errors import Invalid, NotFound
from core.web import form_action


class NameForm(forms.Form):
    name = forms.CharField()


def _request():
    request = RequestFactory().post("/")
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    return request


def _said(request):
    return [(message.level_tag, str(message)) for message in get_messages(request)]


def _fail(error):
    def call():
        raise error
    return call


def test_success_says_so_and_goes_on():
    request = _request()
    response = form_action(request, lambda: 7, success=lambda result: f"Made {result}.", then="/done/")
    assert response.status_code == 302 and response.url == "/done/"
    assert _said(request) == [("success", "Made 7.")]


def test_then_may_build_the_answer_from_the_result():
    request = _request()
    response = form_action(request, lambda: "secret", then=lambda result: HttpResponse(result))
    assert response.content == b"secret" and _said(request) == []


def test_an_error_without_a_form_is_a_message_and_goes_to_on_error():
    request = _request()
    response = form_action(request, _fail(NotFound("No such thing.")), success="Done.", then="/done/", on_error="/back/")
    assert response.url == "/back/" and _said(request) == [("error", "No such thing.")]
    request = _request()
    assert form_action(request, _fail(NotFound("No such thing.")), then="/done/").url == "/done/"


def test_an_error_with_a_form_lands_on_it_and_the_view_renders_it_again():
    request, form = _request(), NameForm({"name": "x"})
    assert form.is_valid()
    answer = form_action(request, _fail(Invalid("Too short.", field="name")), form=form, success="Done.", then="/done/")
    assert answer is None and form.errors == {"name": ["Too short."]} and _said(request) == []


def test_explain_rewrites_the_error_before_it_is_shown():
    def explain(exc):
        exc.detail = exc.detail.replace("xn--bcher-kva.example", "bücher.example")
        return exc

    request = _request()
    form_action(request, _fail(NotFound("xn--bcher-kva.example is not here.")), then="/", explain=explain)
    assert _said(request) == [("error", "bücher.example is not here.")]
