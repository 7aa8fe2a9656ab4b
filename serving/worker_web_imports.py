"""Imported on a side thread by the worker while its engine loads (see serving.worker.main)."""
import fastapi  # noqa: F401
import fastapi.responses  # noqa: F401
import uvicorn  # noqa: F401
import uvicorn.protocols.http.h11_impl  # noqa: F401
import uvicorn.lifespan.on  # noqa: F401
