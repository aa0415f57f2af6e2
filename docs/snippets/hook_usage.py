"""Using PhotaHook from a ``@task`` function (the hook how-to page includes ``portrait_of``)."""

from __future__ import annotations

from airflow_provider_phota.hooks.phota import PhotaHook


def portrait_of(tag: str, destination: str) -> str:
    """Generate one portrait of the newest READY profile of ``tag`` and write it to ``destination``."""
    with PhotaHook() as hook:  # one keep-alive session, closed at the end of the block
        profile = hook.latest_profile(tag, ready_only=True)
        if profile is None:
            raise ValueError(f"no READY profile tagged {tag!r}")
        # a synchronous call; response_mode="urls" (an API field) answers with signed URLs instead of bytes
        result = hook.generate(f"A portrait of [[{profile.profile_id}]]", resolution="2K", response_mode="urls")
        hook.download(result.download_urls[0], destination)
    return destination
