#!/usr/bin/env python
"""Photo search over HTTP: p50/p95 latency and requests/s for 1 and 8 concurrent clients, against in-process.

Builds (or reuses with --reuse) the same library as bench_query.py: --vectors random
unit vectors of the model's dimension (default 100k, EfficientNet-Lite0). Then:

  in-process  Engine.prepare + Engine.search on a 12 MP JPEG: exactly the work the
              route does, minus HTTP, multipart and the audit write             [ms]
  http        `artefact serve` in its own process on a free 127.0.0.1 port; each
              client (a thread with its own keep-alive connection) POSTs the 12 MP
              JPEG to /v1/search/photo --requests times; latency per request, and
              requests/s = all requests / wall time

Target (issue): HTTP p50 with one client under 2x the in-process p50.
Only loopback traffic; every loop is bounded by --requests and --timeout.

  .venv/bin/python benchmarks/bench_http.py                            # 100k vectors
  .venv/bin/python benchmarks/bench_http.py --vectors 20000 --requests 10 --clients 1 8
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see README section 2: the busy-wait default starves the server's threads

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MODELS, dump_json, load_model, machine, summary, table  # noqa: E402
from bench_query import build_library, make_query_jpeg  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_process(home: Path, model: str, data: bytes, repeats: int, rerank: int) -> dict[str, float]:
    from artefact.api.http.engine import Engine
    from artefact.api.settings import Settings
    from artefact.index.catalogue import SearchFilters

    backend, name, pretrained = MODELS[model]
    engine = Engine(Settings(home=home, backend=backend, model=name, pretrained=pretrained or "none", offline=True, device="cpu"))
    try:
        times = []
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            photo = engine.prepare(data)
            engine.search([photo], [], 10, SearchFilters(), None, 0.0, rerank)
            if i:  # the first one warms caches
                times.append((time.perf_counter() - t0) * 1e3)
    finally:
        engine.close()
    return summary(times)


def serve(home: Path, model: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    backend, name, pretrained = MODELS[model]
    port = free_port()
    cmd = [sys.executable, "-m", "artefact.api.cli", "--home", str(home), "--backend", backend, "--model", name,
           "--pretrained", pretrained or "none", "--offline", "--device", "cpu", "-q",
           "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"artefact serve exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", trust_env=False, timeout=5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server not ready after 300 s")


def http_run(url: str, key: str, data: bytes, clients: int, requests: int, timeout: float, rerank: int) -> dict[str, float]:
    import httpx

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, trust_env=False, timeout=timeout) as c:
            for _ in range(requests):
                t0 = time.perf_counter()
                r = c.post("/v1/search/photo", files=[("photos", ("q.jpg", data, "image/jpeg"))],
                           data={"k": "10", "rerank": str(rerank)})
                ms = (time.perf_counter() - t0) * 1e3
                with lock:
                    (latencies.append(ms) if r.status_code == 200 else failures.append(f"{r.status_code} {r.text[:200]}"))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if failures:
        raise SystemExit(f"{len(failures)} failed requests, e.g. {failures[0]}")
    return {**summary(latencies), "requests": len(latencies), "req_per_s": round(len(latencies) / wall, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vectors", type=int, default=100_000)
    ap.add_argument("--per-object", type=int, default=4)
    ap.add_argument("--model", default="efficientnet-lite0", choices=sorted(MODELS))
    ap.add_argument("--requests", type=int, default=20, help="requests per client")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rerank", type=int, default=20, help="the service default; 0 = embedding similarity only")
    ap.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "artefact-bench-http")
    ap.add_argument("--reuse", action="store_true", help="reuse a library already built in --workdir")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from artefact.api.http.security import KeyStore

    home = args.workdir / f"{args.model}-{args.vectors}"
    if not (args.reuse and (home / "vectors.faiss").is_file()):
        built = build_library(home, load_model(args.model), args.vectors, args.per_object)
        print(f"built {built}", file=sys.stderr)
    data = make_query_jpeg()
    result: dict = {"machine": machine(), "vectors": args.vectors, "model": args.model, "rerank": args.rerank,
                    "query_jpeg_bytes": len(data)}
    result["in_process_ms"] = in_process(home, args.model, data, args.requests, args.rerank)

    store = KeyStore(home / "access.sqlite")
    name = f"bench-{os.getpid()}"
    key = store.create(name, "officer")
    store.close()
    proc, url = serve(home, args.model, args.workdir / "serve.log")
    try:
        http_run(url, key, data, 1, 2, args.timeout, args.rerank)  # warm-up
        result["http"] = {str(c): http_run(url, key, data, c, args.requests, args.timeout, args.rerank) for c in args.clients}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        store = KeyStore(home / "access.sqlite")
        store.revoke(name)
        store.close()

    base = result["in_process_ms"]["p50"]
    rows = [{"where": "in-process", "clients": 1, "p50 ms": base, "p95 ms": result["in_process_ms"]["p95"],
             "req/s": round(1000 / result["in_process_ms"]["mean"], 2), "p50 / in-process": 1.0}]
    for c, r in result["http"].items():
        rows.append({"where": "http", "clients": c, "p50 ms": r["p50"], "p95 ms": r["p95"], "req/s": r["req_per_s"],
                     "p50 / in-process": round(r["p50"] / base, 2)})
    result["target_met"] = result["http"][str(args.clients[0])]["p50"] < 2 * base
    if args.json:
        print(dump_json(result))
    else:
        print(f"photo search over HTTP, {args.vectors} vectors, {args.model}, 12 MP JPEG ({len(data)} bytes), rerank={args.rerank}")
        print(table(rows, ["where", "clients", "p50 ms", "p95 ms", "req/s", "p50 / in-process"]))
        print(f"target (1-client HTTP p50 < 2x in-process p50): {'met' if result['target_met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
