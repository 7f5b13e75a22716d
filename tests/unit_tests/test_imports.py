import ast
import importlib
from pathlib import Path

import langchain_coasty

EXPECTED_ALL = [
    "__version__",
    "CoastyClient",
    "AsyncCoastyClient",
    "Run",
    "RunEvent",
    "RunStatus",
    "RunsPage",
    "MachineRecord",
    "CoastyMachinePool",
    "MachinePerCall",
    "MachinePerThread",
    "MachineSpec",
    "MachineUsage",
    "arelease_thread_machine",
    "release_thread_machine",
    "MachineStatus",
    "MachineStateError",
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
    "BadRequestError",
    "IdleTimeoutError",
    "verify_webhook",
    "verify_run_webhook",
    "averify_run_webhook",
    "WebhookEvent",
    "WebhookVerificationError",
    "resume_from_webhook",
    "aresume_from_webhook",
    "CoastyRunnable",
    "FollowedRun",
    "CoastyComputerTool",
    "CoastyGetRunTool",
    "CoastyResumeRunTool",
    "CoastyCancelRunTool",
    "CoastyScreenshotTool",
    "CoastyToolkit",
    "ScreenLimits",
    "CoastyGroundTool",
    "CoastyActTool",
    "CoastyNextActionTool",
    "release_thread_session",
    "arelease_thread_session",
    "CoastyCallbackHandler",
    "AsyncCoastyCallbackHandler",
    "CoastyEventPayload",
    "COASTY_EVENT",
    "HumanAnswer",
    "CoastyMiddleware",
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


def test_every_name_resolves() -> None:
    for name in langchain_coasty.__all__:
        assert getattr(langchain_coasty, name) is not None


def test_type_checkers_see_the_same_names() -> None:
    """The TYPE_CHECKING imports of the package face list exactly the lazy exports."""
    tree = ast.parse(Path(langchain_coasty.__file__).read_text())
    typed: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                typed |= {alias.asname or alias.name for alias in stmt.names}
    assert typed == set(langchain_coasty.__all__) - {"__version__"}


def test_the_sandbox_is_not_on_the_package_face() -> None:
    assert "CoastySandbox" not in langchain_coasty.__all__
    from langchain_coasty.sandbox import CoastySandbox

    assert CoastySandbox.__module__.startswith("langchain_coasty.sandbox")


def test_engine_internals_are_not_exported() -> None:
    internals = {"RunSession", "build_request", "RunPlan", "TOOL_NAME", "build_pause_request"}
    internals |= {"is_wake_up", "event_payload", "child_callbacks", "achild_callbacks"}
    for module in ("runnable", "tools", "durable", "human", "callbacks", "webhooks"):
        exported = set(importlib.import_module(f"langchain_coasty.{module}").__all__)
        assert not exported & internals, (module, exported & internals)
