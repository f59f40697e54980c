"""The Python stack mailroom replaces, for the API enqueue rate: FastAPI validates
`POST /v1/emails` (pydantic, with email-validator for the addresses), checks the bearer key and
queues the job with arq, answering 202 with the job's id, the same work `mailroom serve` does
for the same body. Run it as its own production setup would, one uvicorn worker per core:

    python3 -m pip install fastapi 'uvicorn[standard]' arq email-validator
    python3 -m uvicorn --app-dir bench/compare fastapi_arq_enqueue:app \\
        --host 127.0.0.1 --port 18081 --workers 2 --no-access-log --log-level warning
    wrk -t2 -c64 -d10s --latency -s bench/enqueue.lua http://127.0.0.1:18081
"""

import hmac
import uuid
from typing import List, Optional

from arq import create_pool
from arq.connections import RedisSettings
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, EmailStr, Field

API_KEY = "bench-key"

app = FastAPI()


class Mailbox(BaseModel):
    email: EmailStr
    name: Optional[str] = Field(default=None, max_length=200)


class Email(BaseModel):
    to: List[Mailbox] = Field(min_length=1, max_length=50)
    subject: str = Field(min_length=1, max_length=998)
    text: Optional[str] = None
    html: Optional[str] = None


@app.on_event("startup")
async def startup():
    app.state.redis = await create_pool(RedisSettings())


@app.post("/v1/emails", status_code=202)
async def send(email: Email, authorization: str = Header(default="")):
    if not hmac.compare_digest(authorization, f"Bearer {API_KEY}"):
        raise HTTPException(status_code=401, detail="no or wrong API key")
    if not (email.text or email.html):
        raise HTTPException(status_code=422, detail="text or html is required")
    job_id = str(uuid.uuid4())
    await app.state.redis.enqueue_job("send_email", email.model_dump(), _job_id=job_id)
    return {"id": job_id, "status": "queued"}
