"""Operators for the studio endpoints: edit, generate, enhance and remix: one-row front-ends of the job engine.

Every operator checks all of its arguments before the first paid request (enums, counts, prompts, that every input
file is an image, that the profile ids are ids, that the outputs can be kept) and fails without retries, naming the
field, when one is wrong. It then runs one async job through :mod:`airflow_provider_phota.engine.runner`: a
``client_request_id`` stable for the same DAG run, task, map index and request (a retried or cleared task gets the
original job back: one job, one charge), the wait on the triggerer (``deferrable=True``) or in the worker, the
images written atomically under ``output_path`` with a manifest next to them, and a small
:class:`~airflow_provider_phota.results.ImageOperatorResult` for XCom. Image bytes never go to XCom.

Synchronous calls stay on the hook (``PhotaHook().generate(...)``), for code that wants them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from airflow_provider_phota import contract
from airflow_provider_phota.contract import Endpoint, Violation
from airflow_provider_phota.engine.rows import Batch
from airflow_provider_phota.engine.runner import PhotaJobsOperator
from airflow_provider_phota.pricing import Cost
from airflow_provider_phota.results import ImageOperatorResult


class PhotaStudioOperator(PhotaJobsOperator):
    """What the four studio operators share: one async job, read from the operator's (rendered) attributes.

    Returns an :class:`~airflow_provider_phota.results.ImageOperatorResult`; each key is also an XCom of its own
    (``edit.output["output_uris"]``). Images are http(s) URLs, base64 strings, local file paths, storage URIs or
    ``ObjectStoragePath`` objects; files are read and sent as base64, and every image must be JPEG, PNG, WebP or HEIC.

    :param output_path: the folder the images and the manifest are written to: a local path or an object storage URI
        such as ``s3://aws_default@bucket/prefix`` (templated). Without it the task returns signed URLs that expire
        after 24 hours, and writes no manifest.
    :param output_format: ``png`` (default) or ``jpg``; always sent (templated).
    :param deferrable: wait for the job on the triggerer, freeing the worker slot. Defaults to
        ``[operators] default_deferrable`` (``False`` unless the deployment turns it on).
    :param poll_interval: seconds between job status checks (default 5).
    :param timeout: seconds this try waits for the job in all (default 3600); then the try fails and a retry waits
        for the same job.
    :param client_request_id: the idempotency key to submit instead of the one derived from the DAG run, task, map
        index and request (1-128 characters of ``A-Z a-z 0-9 . _ : -``; templated).
    :param callback_url: an https URL the service POSTs the finished job to (templated).
    :param max_cost_usd: the most this task may spend, in dollars, replacement jobs for FAILED ones included
        (templated). Before the first request the worst-case cost (every output with identity, priced from the
        connection's price table) must fit, else the task fails without retries and nothing is sent; a request whose
        rate is unknown is refused; a replacement job that would cross it is not sent. ``None`` (default): no limit.
    :param phota_conn_id: the Phota connection (default ``phota_default``; templated).
    """

    endpoint: ClassVar[Endpoint]
    template_fields: Sequence[str] = (
        "phota_conn_id",
        "output_path",
        "output_format",
        "client_request_id",
        "callback_url",
        "max_cost_usd",
    )

    def __init__(self, *, client_request_id: str | None = None, callback_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client_request_id = client_request_id
        self.callback_url = callback_url

    def studio_endpoint(self) -> Endpoint:
        return self.endpoint

    def raw_rows(self) -> tuple[list[tuple[str, Any]], list[Violation]]:
        fields = contract.ENDPOINT_FIELDS[self.endpoint] - contract.ASYNC_FIELDS - {"response_mode"}
        return [("", {name: getattr(self, name, None) for name in sorted(fields)})], []

    def result(self, batch: Batch, cost: Cost, manifest_uri: str | None) -> ImageOperatorResult:
        row = batch.rows[0]
        return {
            "endpoint": self.endpoint.value,
            "job_id": row.job_id,
            "client_request_id": row.key,
            "request_id": row.request_id,
            "images": row.count,
            "known_subjects": dict(row.known_subjects),
            "output_uris": list(row.output_uris),
            "download_urls": list(row.download_urls),
            "manifest_uri": manifest_uri,
            **cost.as_extra(),  # type: ignore[typeddict-item]
        }


_MODEL_TEMPLATE_FIELDS = ("num_output_images", "aspect_ratio", "resolution", "base_model", "quality")


class _PromptedStudioOperator(PhotaStudioOperator):
    """What edit and generate share: a prompt and the model options (documented on each of them)."""

    template_fields: Sequence[str] = (*PhotaStudioOperator.template_fields, "prompt", *_MODEL_TEMPLATE_FIELDS)

    def __init__(
        self,
        *,
        prompt: str,
        num_output_images: int | str | None = None,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        base_model: str | None = None,
        quality: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.num_output_images = num_output_images
        self.aspect_ratio = aspect_ratio
        self.resolution = resolution
        self.base_model = base_model
        self.quality = quality


class PhotaEditOperator(_PromptedStudioOperator):
    """Edit 1-10 images with a prompt, keeping the identity of the named profiles. The other arguments are
    :class:`PhotaStudioOperator`'s.

    :param prompt: the instruction; may reference profiles inline as ``[[profile_id]]`` (templated).
    :param images: the input images, 1-10 (templated).
    :param profile_ids: the profiles whose identities to preserve (templated).
    :param num_output_images: 1-4 images (default 1; templated).
    :param aspect_ratio: ``auto``, ``1:1``, ``3:4``, ``4:3``, ``9:16`` or ``16:9`` (templated).
    :param resolution: ``1K``, ``2K`` or ``4K``, as the base model allows (templated).
    :param base_model: ``nb2`` (default), ``gpt-image-2``, ``qwen-image-2``, ``flux-2`` or ``reve`` (templated).
    :param quality: ``auto``, ``low``, ``medium`` or ``high``, with ``gpt-image-2`` only (templated).
    """

    endpoint = Endpoint.EDIT
    template_fields: Sequence[str] = (*_PromptedStudioOperator.template_fields, "images", "profile_ids")
    template_fields_renderers = {"images": "json", "profile_ids": "json"}

    def __init__(
        self, *, images: Sequence[Any] | str, profile_ids: Sequence[str] | str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.images = images
        self.profile_ids = profile_ids


class PhotaGenerateOperator(_PromptedStudioOperator):
    """Generate images from a prompt; bring profiles in with inline ``[[profile_id]]`` tokens. The other arguments
    are :class:`PhotaStudioOperator`'s.

    :param prompt: what to generate; ``[[profile_id]]`` puts that profile's identity in (templated).
    :param num_output_images: 1-4 images (default 1; templated).
    :param aspect_ratio: ``auto``, ``1:1``, ``3:4``, ``4:3``, ``9:16`` or ``16:9`` (templated).
    :param resolution: ``1K``, ``2K`` or ``4K``, as the base model allows (templated).
    :param base_model: ``nb2`` (default), ``gpt-image-2``, ``qwen-image-2``, ``flux-2`` or ``reve`` (templated).
    :param quality: ``auto``, ``low``, ``medium`` or ``high``, with ``gpt-image-2`` only (templated).
    """

    endpoint = Endpoint.GENERATE


class PhotaEnhanceOperator(PhotaStudioOperator):
    """Enhance one image (at 2K, keeping its aspect ratio), optionally guided by a prompt and profiles. The other
    arguments are :class:`PhotaStudioOperator`'s.

    :param image: the input image (templated).
    :param profile_ids: the profiles whose identities to preserve (templated).
    :param prompt: optional guidance (templated).
    :param num_output_images: 1-4 variations (default 1; templated).
    """

    endpoint = Endpoint.ENHANCE
    template_fields: Sequence[str] = (
        *PhotaStudioOperator.template_fields,
        "image",
        "profile_ids",
        "prompt",
        "num_output_images",
    )
    template_fields_renderers = {"profile_ids": "json"}

    def __init__(
        self,
        *,
        image: Any,
        profile_ids: Sequence[str] | str | None = None,
        prompt: str | None = None,
        num_output_images: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image = image
        self.profile_ids = profile_ids
        self.prompt = prompt
        self.num_output_images = num_output_images


class PhotaRemixOperator(PhotaStudioOperator):
    """Restyle ``input_image`` after ``reference_image`` (at 2K, in the input's aspect ratio), keeping identities.
    The other arguments are :class:`PhotaStudioOperator`'s.

    :param input_image: the content photo (templated).
    :param reference_image: the style source (templated).
    :param profile_ids: the profiles whose identities to keep (templated).
    :param prompt: what to keep or emphasise (templated).
    :param num_output_images: 1-4 variations (default 1, always sent: the remix guide requires it; templated).
    """

    endpoint = Endpoint.REMIX
    template_fields: Sequence[str] = (
        *PhotaStudioOperator.template_fields,
        "input_image",
        "reference_image",
        "profile_ids",
        "prompt",
        "num_output_images",
    )
    template_fields_renderers = {"profile_ids": "json"}

    def __init__(
        self,
        *,
        input_image: Any,
        reference_image: Any,
        profile_ids: Sequence[str] | str | None = None,
        prompt: str | None = None,
        num_output_images: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_image = input_image
        self.reference_image = reference_image
        self.profile_ids = profile_ids
        self.prompt = prompt
        self.num_output_images = num_output_images
