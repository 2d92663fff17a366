"""The score query of one patient on a PostgreSQL holding 100,000 scored instances.

Starts a throw-away PostgreSQL 15 cluster (Debian's, as the tests do), migrates it, fills it
with COPY (instances of 5 images per patient, 20 joint scores each), then times
``GET /api/v1/patients/{id}/scores`` through the real API (token check and audit row
included) and the query function alone, for random patients. Prints JSON.

    python benchmarks/api.py [--instances 100000] [--queries 300]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

JOINTS = [f"{s}_{j}" for s in "LR" for j in ("IP", *(f"PIP{i}" for i in range(2, 6)),
                                             *(f"MCP{i}" for i in range(1, 6)))]  # fmt: skip
PER_PATIENT = 5


def fill(dsn: str, instances: int) -> int:
    """COPY the rows in; returns the number of patients."""
    import psycopg

    patients = instances // PER_PATIENT
    now = "2026-11-27 12:00:00+00"
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:

        def copy(table: str, columns: str, rows: io.StringIO) -> None:
            rows.seek(0)
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as out:
                while chunk := rows.read(1 << 20):
                    out.write(chunk)

        studies, insts, jobs, scores, joints = (io.StringIO() for _ in range(5))
        joint_id = 0
        for i in range(1, instances + 1):
            patient = (i - 1) // PER_PATIENT
            studies.write(f"{i}\t1.2.3.{i}\tP{patient:06d}\t\tACC{i}\t2026-01-01\t{now}\n")
            insts.write(
                f"{i}\t{i}\t1.2.3.{i}.1\t1.2.3.{i}.1.1\t1.2.840.10008.5.1.4.1.1.1\t{i:064x}\t"
                f"1.2.840.10008.1.2.1\t1000\tCR\tHAND\tR\timages/{i}.dcm\tscored\t\t{now}\n"
            )
            jobs.write(f"{i}\t{i}\tm\t1.0.0+bench\tdone\tscored\t{now}\t{now}\t{now}\t{now}\n")
            scores.write(
                f"{i}\t{i}\t{i}\tm\t1.0.0+bench\t2.25.1\tscored\t20\t5\t{{}}\t"
                f'{{"labels": []}}\t0.15\tf\t{{}}\t{now}\n'
            )
            for label in JOINTS:
                joint_id += 1
                joints.write(
                    f"{joint_id}\t{i}\t{label}\t10\t10\t40\t40\t1\t0\t"
                    f'{{"p": [0.1, 0.6, 0.1, 0.1, 0.1]}}\t'
                    f'{{"p": [0.5, 0.1, 0.1, 0.1, 0.1, 0.1]}}\tcascade\n'
                )
        copy(
            "studies",
            "id, study_instance_uid, patient_id, patient_name, accession_number, study_date, "
            "created_at",
            studies,
        )
        copy(
            "instances",
            "id, study_id, series_instance_uid, sop_instance_uid, sop_class_uid, sha256, "
            "transfer_syntax, size, modality, body_part, laterality, store_key, status, reason, "
            "received_at",
            insts,
        )
        copy(
            "jobs",
            "id, instance_id, model_name, model_version, status, reason, created_at, "
            "enqueued_at, finished_at, built_at",
            jobs,
        )
        copy(
            "image_scores",
            "id, job_id, instance_id, model_name, model_version, model_device_uid, status, "
            "total_jsn, total_erosion, hands, missing, pixel_spacing_mm, pixel_spacing_assumed, "
            "timings_ms, scored_at",
            scores,
        )
        copy(
            "joint_scores",
            "id, image_score_id, label, box_x, box_y, box_w, box_h, jsn, erosion, jsn_probs, "
            "erosion_probs, found_by",
            joints,
        )
        for table in ("studies", "instances", "jobs", "image_scores", "joint_scores"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        conn.commit()
        conn.autocommit = True
        cur.execute("ANALYZE")
    return patients


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(round(q * len(ordered)) - 1, 0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()

    import httpx
    import uvicorn
    from servers import PostgresServer, free_port

    from worker.api.app import create_app
    from worker.db import migrate, queries
    from worker.db.engine import session_scope
    from worker.db.models import TokenRole
    from worker.db.tokens import create_token
    from worker.settings import Settings

    server = PostgresServer().start()
    try:
        url = server.create_database("bench")
        migrate.upgrade(url)
        started = time.perf_counter()
        patients = fill(
            f"host=127.0.0.1 port={server.port} user=postgres dbname=bench", args.instances
        )
        fill_s = time.perf_counter() - started
        with session_scope(url) as session:
            token = create_token(session, "bench", TokenRole.READ)

        rng = random.Random(0)
        direct = []
        for _ in range(args.queries):
            patient = f"P{rng.randrange(patients):06d}"
            t0 = time.perf_counter()
            with session_scope(url) as session:
                rows = queries.scores_for_patient(session, patient)
            direct.append((time.perf_counter() - t0) * 1e3)
            assert len(rows) == PER_PATIENT and len(rows[0]["joints"]) == len(JOINTS)

        port = free_port()
        settings = Settings(database_url=url, api_port=port, home=Path("/tmp/rascore-bench-api"))
        api = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_level="warning"))
        threading.Thread(target=api.run, daemon=True).start()
        while not api.started:
            time.sleep(0.05)
        http = []
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        ) as client:
            for _ in range(args.queries):
                patient = f"P{rng.randrange(patients):06d}"
                t0 = time.perf_counter()
                response = client.get(f"/api/v1/patients/{patient}/scores")
                http.append((time.perf_counter() - t0) * 1e3)
                assert response.status_code == 200 and len(response.json()) == PER_PATIENT
        api.should_exit = True
    finally:
        server.stop()

    print(
        json.dumps(
            {
                "instances": args.instances,
                "patients": patients,
                "joint_rows": args.instances * len(JOINTS),
                "fill_s": round(fill_s, 1),
                "queries": args.queries,
                "query_function_ms": {
                    "median": round(statistics.median(direct), 2),
                    "p95": round(percentile(direct, 0.95), 2),
                },
                "http_api_ms": {
                    "median": round(statistics.median(http), 2),
                    "p95": round(percentile(http, 0.95), 2),
                },
                "database": "PostgreSQL 15 (Debian), fsync off, same machine",
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
