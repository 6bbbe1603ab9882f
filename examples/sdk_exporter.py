"""Use faultlens's disk-buffered OTLP exporters from an application instrumented with the SDK.

Run it as is and it starts a local test backend, takes the backend down while the app keeps
producing spans and logs, brings it back, and shows that everything arrived::

    python examples/sdk_exporter.py

Point it at a real collector instead (spans and logs then go there)::

    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 \
        python examples/sdk_exporter.py --use-env --queue-dir /var/lib/app/otlp

The exporters read the standard ``OTEL_EXPORTER_OTLP_*`` variables like the official ones; the
only addition is ``queue_dir`` (or ``FAULTLENS_EXPORT_QUEUE_DIR``): batches wait there, on
disk, until the backend takes them, across outages and process restarts.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from faultlens.export.sdk import LogExporter, SpanExporter
from faultlens.testing.otlp_backend import OtlpBackend
from faultlens.types import Signal


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queue-dir", help="where unsent batches wait (default: a temporary directory)")
    parser.add_argument("--spans", type=int, default=200)
    parser.add_argument("--use-env", action="store_true", help="send where OTEL_EXPORTER_OTLP_* say")
    args = parser.parse_args()
    queue_dir = args.queue_dir or tempfile.mkdtemp(prefix="faultlens-example-")

    backend = None if args.use_env else OtlpBackend().start()
    endpoint = None if backend is None else backend.http_endpoint

    resource = Resource.create({"service.name": "checkout"})
    tracer_provider = TracerProvider(resource=resource)
    span_exporter = SpanExporter(
        f"{endpoint}/v1/traces" if endpoint else None,
        queue_dir=queue_dir,
        compression="gzip",
    )
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter, schedule_delay_millis=200))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(LogExporter(f"{endpoint}/v1/logs" if endpoint else None, queue_dir=queue_dir))
    )
    app_log = logging.getLogger("checkout")
    app_log.addHandler(LoggingHandler(logger_provider=logger_provider))

    tracer = tracer_provider.get_tracer("example")
    half = args.spans // 2
    for i in range(args.spans):
        if backend is not None and i == half:
            backend.stop()  # the backend goes away: spans keep flowing into the disk queue
            print(f"backend down after {i} spans; still producing")
        with tracer.start_as_current_span("GET /cart", attributes={"http.route": "/cart"}) as span:
            if i % 25 == 0:
                span.set_attribute("error.type", "TimeoutError")
                app_log.error("payment service timed out (order %d)", i)
    tracer_provider.force_flush(5_000)
    health = span_exporter.exporter.health()
    print(f"waiting on disk: {health.queue_items} spans (last error: {health.last_error})")

    if backend is not None:
        time.sleep(0.5)
        backend.start()
        print("backend back")
    span_exporter.force_flush(30_000)
    tracer_provider.shutdown()
    logger_provider.shutdown()
    if backend is not None:
        spans = len(backend.unique_span_ids())
        logs = backend.items(Signal.LOGS)
        print(f"backend received {spans} of {args.spans} spans and {logs} log records")
        backend.stop()
    print(f"queue directory: {queue_dir}")


if __name__ == "__main__":
    main()
