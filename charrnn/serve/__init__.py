"""`charrnn serve`: a trained model as a local HTTP service.

`app` (routes, errors, CORS, key), `completions` (the generating routes), `service` (what a running
server holds and how requests are admitted), `scheduler` (the batching worker thread), `sessions`
(SQLite states), `models` (named checkpoints), `protocol` (OpenAI's request and response shapes),
`middleware` (access log, API key, body cap); the playground page is package data in `assets/`.
Needs the `serve` extra (Starlette, uvicorn).
"""
