"""The main job: run the ``phota_subject_pipeline`` example DAG end to end against the bundled emulator.

It draws a set of subject photos, serves them on loopback (training takes URLs), starts the emulator, runs the DAG
with ``dag.test()`` (the sensor and the image operators really defer; their triggers run inline), and writes the
images, the manifest and a contact sheet (index.html + montage.png) to ./demo-output/. Exits non-zero on failure.
Started by ``bash scripts/demo``.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import secrets
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "demo-output"
AIRFLOW_HOME = ROOT / ".airflow-home" / "demo"
TRAINING_SECONDS = 8.0  # long enough that the sensor finds the profile still training and defers
JOB_SECONDS = 3.0


def prepare_environment(verbose: bool) -> None:
    """A private, fresh Airflow home; set before Airflow is imported."""
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)
    AIRFLOW_HOME.mkdir(parents=True)
    os.environ.update(
        AIRFLOW_HOME=str(AIRFLOW_HOME),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "example_dags"),
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO" if verbose else "WARNING",
        PHOTA_EXAMPLE_POLL_SECONDS="1",
        # Trigger kwargs and connections are stored encrypted, as in any real deployment.
        AIRFLOW__CORE__FERNET_KEY=_fernet_key(),
    )


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def contact_sheet(manifest: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """index.html and montage.png of every published image with its prompt."""
    from PIL import Image, ImageDraw, ImageFont

    entries = manifest["images"]
    thumb, caption_height, columns = 360, 64, 3
    rows = (len(entries) + columns - 1) // columns
    montage = Image.new("RGB", (columns * thumb, rows * (thumb + caption_height)), "white")
    draw = ImageDraw.Draw(montage)
    font = ImageFont.load_default(size=13)
    cards = []
    for index, entry in enumerate(entries):
        path = Path(entry["uri"].removeprefix("file://"))
        x, y = (index % columns) * thumb, (index // columns) * (thumb + caption_height)
        with Image.open(path) as image:
            image.thumbnail((thumb - 8, thumb - 8))
            montage.paste(image, (x + (thumb - image.width) // 2, y + (thumb - image.height) // 2))
            size = f"{image.width}x{image.height}"
        caption = f"{entry['kind']}: {entry['prompt']}"
        for line_number, start in enumerate(range(0, min(len(caption), 150), 50)):
            draw.text((x + 6, y + thumb + 4 + line_number * 16), caption[start : start + 50], fill="black", font=font)
        relative = os.path.relpath(path, folder)
        cards.append(
            f'<figure><a href="{html.escape(relative)}"><img src="{html.escape(relative)}" alt=""></a>'
            f"<figcaption><b>{html.escape(entry['kind'])}</b> {html.escape(entry['prompt'])}<br>"
            f"<small>{html.escape(path.name)} &middot; {entry['bytes']:,} bytes &middot; thumbnail {size}</small>"
            "</figcaption></figure>"
        )
    montage_path = folder / "montage.png"
    montage.save(montage_path)
    page = folder / "index.html"
    page.write_text(
        "<!doctype html><meta charset=utf-8><title>Phota demo contact sheet</title>"
        "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;width:360px;margin:8px;"
        "vertical-align:top}img{max-width:100%}</style>"
        f"<h1>Subject pipeline: {html.escape(manifest['subject'])}</h1>"
        f"<p>{len(entries)} images. Montage: <a href=montage.png>montage.png</a></p>" + "".join(cards)
    )
    return page, montage_path


def run(verbose: bool) -> int:
    prepare_environment(verbose)
    # Airflow's own FastAPI test client import warns about httpx; nothing the demo can act on.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.db import resetdb

    from airflow_provider_phota.testing import PhotaEmulator
    from airflow_provider_phota.testing.samples import PhotoServer, make_subject_photos

    shutil.rmtree(OUTPUT, ignore_errors=True)
    photos = make_subject_photos(OUTPUT / "inputs" / "photos", count=12, subject="demo-subject")
    print(f"==> drew {len(photos)} subject photos in {photos[0].parent}")
    print("==> creating the Airflow metadata database")
    resetdb()
    dag = DagBag(str(ROOT / "example_dags")).get_dag("phota_subject_pipeline")
    api_key = "demo-" + secrets.token_hex(8)
    with (
        PhotoServer(photos[0].parent) as server,
        PhotaEmulator(api_key=api_key, training_seconds=TRAINING_SECONDS, job_seconds=JOB_SECONDS) as emulator,
    ):
        os.environ["AIRFLOW_CONN_PHOTA_DEFAULT"] = json.dumps(
            {"conn_type": "phota", "host": emulator.base_url, "password": api_key}
        )
        print(f"==> emulator at {emulator.base_url}, photos served at {server.base_url}")
        print("==> running phota_subject_pipeline (train -> wait on the triggerer -> generate -> enhance -> publish)")
        started = time.monotonic()
        dag_run = dag.test(
            run_conf={
                "photos_uri": f"file://{photos[0].parent}",
                "photos_base_url": server.base_url,
                "output_uri": f"file://{OUTPUT / 'images'}",
                "publish_uri": f"file://{OUTPUT / 'published'}",
            }
        )
        elapsed = time.monotonic() - started
        states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
        status_polls = len(emulator.requests_to("/v1/phota/profiles/*/status", "GET"))
        job_polls = len(emulator.requests_to("/v1/phota/jobs/*", "GET"))
        charges = emulator.charges()
    if str(dag_run.state) not in ("success", "DagRunState.SUCCESS"):
        print(f"FAILED: the DAG run ended {dag_run.state}; task states: {states}", file=sys.stderr)
        return 1
    manifests = sorted((OUTPUT / "published").glob("*/manifest.json"))
    if not manifests:
        print("FAILED: the run succeeded but wrote no manifest", file=sys.stderr)
        return 1
    manifest = json.loads(manifests[-1].read_text())
    page, montage = contact_sheet(manifest, OUTPUT)
    print(f"==> done in {elapsed:.0f} s: {len(manifest['images'])} images published")
    print(
        f"    the sensor deferred: {status_polls} profile status polls (one after the create and the sensor's check"
        " in workers, the rest on the triggerer)"
    )
    bill = ", ".join(f"{c.kind} {c.endpoint} ${c.amount_usd:.2f}" for c in charges)
    print(f"    async jobs polled {job_polls} times (GETs only: on the triggerer, and once as each task resumes)")
    print(f"    charges:       {bill}")
    print(f"    images:        {OUTPUT / 'images'}")
    print(f"    published:     {manifests[-1].parent}")
    print(f"    manifest:      {manifests[-1]}")
    print(f"    contact sheet: {page}")
    print(f"    montage:       {montage}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--verbose", action="store_true", help="show Airflow's task logs")
    sys.exit(run(parser.parse_args().verbose))


if __name__ == "__main__":
    main()
