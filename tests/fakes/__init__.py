"""Local HTTP servers that speak the hosted providers' real wire protocols (shared/protocols/).

`openai_server.FakeOpenAI`, `dashscope_server.FakeDashScope`, `liblib_server.FakeLiblib`: each
checks auth like the real API, answers errors in the real shape, runs async tasks over successive
polls and serves the PNGs it links to. Start one with `.start()` (uvicorn in a thread, port 0) or
use the session fixtures of `tests.fakes.fixtures` (`openai_fake`, `dashscope_fake`,
`liblib_fake`); toggle failures with `fail_next(...)`, `delay_seconds`, and reset with `reset()`.
"""
