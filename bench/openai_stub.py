"""A fast, deterministic OpenAI-compatible endpoint on loopback, for benchmarks and tests of the HTTP
engine (``engine.kind=openai``) where no LLM exists: it answers ``/v1/models``, ``/v1/chat/completions``
and ``/v1/completions`` with a few words drawn from a hash of the prompt (the same prompt: the same
thought), and counts usage in whitespace-separated words. With ``context_chars`` set, a prompt longer
than that is refused with the 400 answer vLLM's server gives for an over-long prompt.

In-process (a thread per connection; HTTP/1.1 keep-alive):

    endpoint = StubEndpoint(); endpoint.start(); ... endpoint.base_url ...; endpoint.shutdown()

As a process (what a benchmark should do, so the server does not share the driver's interpreter):

    python bench/openai_stub.py [--port 8000] [--words 8] [--model stub]

prints ``listening <base_url>`` once it answers.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import threading

WORDS = ("the", "query", "asks", "about", "a", "passage", "that", "explains", "why", "how", "protein", "cells",
         "river", "energy", "history", "answer", "likely", "describes", "causes", "effects")


def thought(prompt: str, words: int) -> str:
    """``words`` words picked by the prompt's hash."""
    digest = hashlib.blake2b(prompt.encode("utf-8", "surrogatepass"), digest_size=max(words, 1)).digest()
    return " ".join(WORDS[b % len(WORDS)] for b in digest[:words])


class StubEndpoint(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0, model: str = "stub", words: int = 8, context_chars: int | None = None) -> None:
        self.model, self.words, self.context_chars = model, words, context_chars
        self.prompt_sizes: list[int] = []
        """Characters of every prompt's messages (kept only when ``context_chars`` is set: tests look)."""
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def start(self) -> "StubEndpoint":
        threading.Thread(target=self.serve_forever, name="openai-stub", daemon=True).start()
        return self

    def answer(self, path: str, request: dict) -> tuple[int, dict]:
        if path.endswith("/chat/completions"):
            contents = [str(m.get("content", "")) for m in request.get("messages", [])]
            prompt, size = "\n".join(contents), sum(map(len, contents))
        elif path.endswith("/completions"):
            prompt = request.get("prompt", "")
            prompt = prompt if isinstance(prompt, str) else json.dumps(prompt)
            size = len(prompt)
        else:
            return 404, {"error": {"message": f"no route {path}", "type": "NotFoundError", "code": 404}}
        if self.context_chars is not None:
            with self._lock:
                self.prompt_sizes.append(size)
            if size > self.context_chars:
                return 400, {"error": {"message": f"This model's maximum context length is {self.context_chars} "
                                                  f"tokens. However, you requested {size}",
                                       "type": "BadRequestError", "code": 400}}
        words = min(self.words, int(request.get("max_tokens") or self.words))
        text = thought(prompt, words)
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": words}
        usage["total_tokens"] = usage["prompt_tokens"] + words
        finish = "length" if words < self.words else "stop"
        if path.endswith("/chat/completions"):
            choice = {"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}
            kind = "chat.completion"
        else:
            choice = {"index": 0, "finish_reason": finish, "text": text}
            kind = "text_completion"
        return 200, {"id": "stub", "object": kind, "created": 0, "model": self.model, "choices": [choice],
                     "usage": usage}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connections
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms wait for an ACK

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        server: StubEndpoint = self.server
        if self.path.rstrip("/").endswith("/models"):
            self._reply(200, {"object": "list", "data": [{"id": server.model, "object": "model", "created": 0,
                                                         "owned_by": "o1e-bench"}]})
        else:
            self._reply(404, {"error": {"message": f"no route {self.path}", "code": 404}})

    def do_POST(self) -> None:
        server: StubEndpoint = self.server
        try:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        except ValueError as err:
            self._reply(400, {"error": {"message": f"bad JSON: {err}", "type": "BadRequestError", "code": 400}})
            return
        self._reply(*server.answer(self.path.split("?")[0], request))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="stub")
    parser.add_argument("--words", type=int, default=8, help="words (= completion tokens) per answer")
    args = parser.parse_args()
    endpoint = StubEndpoint(args.port, args.model, args.words)
    print(f"listening {endpoint.base_url}", flush=True)
    endpoint.serve_forever()


if __name__ == "__main__":
    main()
