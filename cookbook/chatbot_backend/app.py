"""Chatbot backend: a chat message starts an agent thread; the page follows its Coasty run live.

A Starlette service for a chat product. ``POST /api/chat`` hands the user's message to a
LangGraph planner that delegates it to Coasty through ``CoastyComputerTool``; the page at ``/``
follows the thread over Server-Sent Events (``GET /api/threads/{id}/events``: the run's
``coasty_event``s, the machine's screen after each step (``coasty_screenshot``), the agent's
question with the screen at the pause, the planner's messages) and answers a pause with
Approve (and a note) or Cancel (``POST /api/threads/{id}/answer``), which resumes the same
graph thread with ``Command(resume=...)`` and so resumes or cancels the same run.

Run it (local sandbox unless COASTY_API_KEY and COASTY_BASE_URL are set)::

    python cookbook/chatbot_backend/app.py --port 8000   # then open http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from langchain_coasty import CoastyComputerTool, ScreenLimits
from langchain_coasty.callbacks import coasty_payload, screenshot_payload
from langchain_coasty.examples import (
    SYSTEM_PROMPT,
    ScriptedPlanner,
    chat_model_from_env,
    coasty_target,
)
from langchain_coasty.human import question_of

PAGE = Path(__file__).with_name("index.html")
HEARTBEAT_SECONDS = 15.0


@dataclass
class ThreadLog:
    """What one chat thread has shown so far; SSE clients replay it from any position."""

    items: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    busy: bool = False
    pending: dict[str, Any] = field(default_factory=dict)  # interrupt id -> payload
    answers: dict[str, Any] = field(default_factory=dict)  # interrupt id -> answer, until resumed

    async def add(self, kind: str, data: dict[str, Any]) -> None:
        async with self.changed:
            if kind == "screen":  # keep only the latest image: a long run has many steps
                for item in self.items:
                    if item["kind"] == "screen":
                        item["data"]["screen"].pop("data", None)
            self.items.append({"kind": kind, "data": data})
            self.changed.notify_all()


class ChatService:
    """Runs one LangGraph thread per chat and records what each thread shows."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.threads: dict[str, ThreadLog] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def thread(self, thread_id: str) -> ThreadLog | None:
        return self.threads.get(thread_id)

    async def send(self, thread_id: str | None, message: str) -> str:
        """Start (or continue) a thread with the user's message; returns the thread id."""
        thread_id = thread_id or uuid.uuid4().hex
        log = self.threads.setdefault(thread_id, ThreadLog())
        if log.busy or log.pending:
            raise RuntimeError("this thread is still working on the previous message")
        await log.add("user", {"text": message})
        self._start(thread_id, {"messages": [HumanMessage(message)]})
        return thread_id

    async def answer(self, thread_id: str, interrupt_id: str, approve: bool, note: str) -> None:
        """Answer the agent's pending question: approve (with an optional note) or cancel."""
        log = self.threads[thread_id]
        if interrupt_id not in log.pending or log.busy:
            raise KeyError(interrupt_id)
        if approve:
            decision = {"type": "respond", "message": note} if note else {"type": "approve"}
        else:
            decision = {"type": "reject", "message": note or "Cancelled from the chat."}
        del log.pending[interrupt_id]
        log.answers[interrupt_id] = {"decisions": [decision]}
        await log.add("answered", {"interrupt_id": interrupt_id, "approve": approve, "note": note})
        if not log.pending:  # every question of this step answered: resume the graph
            answers, log.answers = log.answers, {}
            self._start(thread_id, Command(resume=answers))

    def _start(self, thread_id: str, graph_input: Any) -> None:
        self.threads[thread_id].busy = True
        task = asyncio.create_task(self._drive(thread_id, graph_input))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drive(self, thread_id: str, graph_input: Any) -> None:
        log = self.threads[thread_id]
        config = {"configurable": {"thread_id": thread_id}}
        try:
            async for mode, chunk in self.agent.astream(
                graph_input, config, stream_mode=["updates", "custom"]
            ):
                if mode == "custom":
                    if (event := coasty_payload(chunk)) is not None:
                        await log.add("coasty", event)
                    elif (shot := screenshot_payload(chunk)) is not None:
                        await log.add("screen", _screen(shot))
                    continue
                for node, update in chunk.items():
                    if node == "__interrupt__":
                        for item in update:
                            log.pending[item.id] = item.value
                            await log.add("question", _question(item.id, item.value))
                    elif isinstance(update, dict):
                        for message in update.get("messages", []):
                            await log.add(*_message(message))
        except Exception as exc:  # the page must learn about it; the thread stays usable
            await log.add("failure", {"message": f"{type(exc).__name__}: {exc}"})
        finally:
            log.busy = False
            await log.add("idle" if not log.pending else "waiting", {})

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _screen(shot: dict[str, Any]) -> dict[str, Any]:
    """What the page needs of a screenshot payload: the image, when, and of which run."""
    return {"run_id": shot["run_id"], "seq": shot["seq"], **shot["data"]}


def _question(interrupt_id: str, value: Any) -> dict[str, Any]:
    coasty = value.get("coasty", {}) if isinstance(value, dict) else {}
    return {"interrupt_id": interrupt_id, "question": question_of(value), "coasty": coasty}


def _message(message: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(message, ToolMessage):
        return "tool", {"name": message.name, "text": message.text}
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = [{"name": c["name"], "args": c["args"]} for c in message.tool_calls]
        return "plan", {"text": message.text, "tool_calls": calls}
    return "assistant", {"text": getattr(message, "text", str(message))}


def _more(log: ThreadLog, sent: int) -> bool:
    return len(log.items) > sent


def _sse(seq: int, item: dict[str, Any]) -> str:
    return f"id: {seq}\nevent: {item['kind']}\ndata: {json.dumps(item['data'], default=str)}\n\n"


def create_app(agent: Any) -> Starlette:
    """The Starlette app serving the page, the chat API and the SSE feed for `agent`."""
    service = ChatService(agent)

    async def page(request: Request) -> Response:
        return FileResponse(PAGE, media_type="text/html")

    async def chat(request: Request) -> Response:
        body = await request.json()
        message = str(body.get("message", "")).strip()
        if not message:
            return JSONResponse({"error": "message is required"}, status_code=400)
        try:
            thread_id = await service.send(body.get("thread_id"), message)
        except RuntimeError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        return JSONResponse({"thread_id": thread_id}, status_code=202)

    async def answer(request: Request) -> Response:
        thread_id = request.path_params["thread_id"]
        body = await request.json()
        if service.thread(thread_id) is None:
            return JSONResponse({"error": "unknown thread"}, status_code=404)
        action = body.get("action")
        if action not in {"approve", "cancel"}:
            return JSONResponse({"error": "action must be approve or cancel"}, status_code=400)
        try:
            await service.answer(
                thread_id,
                str(body.get("interrupt_id")),
                action == "approve",
                str(body.get("note") or "").strip(),
            )
        except KeyError:
            return JSONResponse({"error": "no such pending question"}, status_code=409)
        return JSONResponse({"ok": True}, status_code=202)

    async def events(request: Request) -> Response:
        log = service.thread(request.path_params["thread_id"])
        if log is None:
            return JSONResponse({"error": "unknown thread"}, status_code=404)
        start = request.headers.get("last-event-id") or request.query_params.get("after") or "0"

        async def feed() -> AsyncIterator[str]:
            sent = int(start)
            while True:
                async with log.changed:
                    try:
                        await asyncio.wait_for(
                            log.changed.wait_for(partial(_more, log, sent)), HEARTBEAT_SECONDS
                        )
                    except TimeoutError:
                        yield ": ping\n\n"
                        continue
                    fresh = log.items[sent:]
                for item in fresh:
                    sent += 1
                    yield _sse(sent, item)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(feed(), media_type="text/event-stream", headers=headers)

    routes = [
        Route("/", page),
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/threads/{thread_id}/events", events),
        Route("/api/threads/{thread_id}/answer", answer, methods=["POST"]),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await service.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    return app


def build_agent(
    api_key: str, base_url: str, machine_id: str, model: BaseChatModel | None = None
) -> Any:
    """The chat agent: a planner with the Coasty computer tool and an in-memory checkpointer."""
    tool = CoastyComputerTool(
        api_key=api_key,
        base_url=base_url,
        machine_id=machine_id,
        max_steps=20,
        on_awaiting_human="interrupt",
        screens=ScreenLimits(max_width=960, max_bytes=150_000),  # what the page shows
        screens_at=("step", "pause", "end"),
    )
    return create_agent(
        model or ScriptedPlanner(),
        tools=[tool],
        system_prompt=SYSTEM_PROMPT,
        checkpointer=InMemorySaver(),
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Coasty chatbot backend")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--pace", type=float, default=0.3, help="sandbox seconds per event")
    args = parser.parse_args()
    model, planner = chat_model_from_env()
    with coasty_target(pace=args.pace) as target:
        print(f"Planner: {planner}\nCoasty:  {target.label}")
        print(f"Open http://127.0.0.1:{args.port}/")
        agent = build_agent(target.api_key, target.base_url, target.machine_id, model)
        uvicorn.run(create_app(agent), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
