import importlib

import langchain_coasty

EXPECTED_ALL = [
    "__version__",
    "CoastyClient",
    "AsyncCoastyClient",
    "Run",
    "RunEvent",
    "RunStatus",
    "RunsPage",
    "CoastyError",
    "APIConnectionError",
    "APITimeoutError",
    "APIStatusError",
    "AuthenticationError",
    "InsufficientCreditsError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "IdempotencyInFlightError",
    "PayloadTooLargeError",
    "UnprocessableEntityError",
    "IdempotencyKeyReusedError",
    "RateLimitError",
    "InternalServerError",
    "InvalidRequestError",
    "verify_webhook",
    "WebhookEvent",
    "WebhookVerificationError",
    "CoastyRunnable",
    "CoastyComputerTool",
    "CoastyToolkit",
    "CoastyCallbackHandler",
    "CoastySandbox",
]


def test_all_is_pinned() -> None:
    assert sorted(langchain_coasty.__all__) == sorted(EXPECTED_ALL)


def test_version_matches_distribution() -> None:
    from importlib.metadata import version

    assert langchain_coasty.__version__ == version("langchain-coasty")


def test_unknown_attribute_is_an_attribute_error() -> None:
    mod = importlib.import_module("langchain_coasty")
    try:
        mod.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
