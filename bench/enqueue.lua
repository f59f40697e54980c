-- wrk script for the API's enqueue rate: POST /v1/emails with a small message.
--   wrk -t2 -c64 -d20s --latency -s bench/enqueue.lua http://127.0.0.1:8080
-- The API key comes from MAILROOM_BENCH_KEY (default "bench-key").
wrk.method = "POST"
wrk.path = "/v1/emails"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("MAILROOM_BENCH_KEY") or "bench-key")
wrk.body = '{"to":[{"email":"load@example.com","name":"Load Test"}],' ..
  '"subject":"Benchmark","text":"Hello from wrk","html":"<p>Hello from <b>wrk</b></p>"}'
