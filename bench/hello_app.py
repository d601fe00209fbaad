"""The baseline for `bench/http_bench.py`: the smallest FastAPI app, served the same way as postengine
(one uvicorn worker, uvloop + httptools, no access log).

    .venv/bin/python -m uvicorn --app-dir bench hello_app:app --host 127.0.0.1 --port 8001
"""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
