"""The three service images, built from `images/Dockerfile` with pulumi-docker-build.

One shared multi-stage Dockerfile with one target per service (`dispatcher`, `spawner`,
`runner`); the build context is the repository root, filtered by the root `.dockerignore`.

- `local` registry: images are loaded into the local Docker daemon and not pushed; `kind load
  docker-image` then copies them into the cluster (docs/deploy.md). The tag is a fingerprint of
  the build inputs, so a code change yields a new tag and the Deployment, CronJob and runner
  template roll forward on the next `pulumi up`.
- `ecr` registry: this component creates one ECR repository per service and pushes there; the
  exported reference is digest-pinned (`repo:tag@sha256:...`), so what runs is exactly what was
  built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from infra.config import ImageRegistry

REPOSITORY_PREFIX = "workflow-runtime"

#: Paths (relative to the build context) whose content determines the images.
_FINGERPRINT_INPUTS = ("pyproject.toml", "README.md", "images/Dockerfile", ".dockerignore")
_FINGERPRINT_TREES = ("services",)
_IGNORED_PARTS = {"__pycache__"}
_IGNORED_SUFFIXES = {".pyc", ".pyo"}


def _fingerprint_files(context_dir: Path) -> Iterator[Path]:
    for relative in _FINGERPRINT_INPUTS:
        path = context_dir / relative
        if path.is_file():
            yield path
    for tree in _FINGERPRINT_TREES:
        for path in sorted((context_dir / tree).rglob("*")):
            if (
                path.is_file()
                and not _IGNORED_PARTS.intersection(path.parts)
                and path.suffix not in _IGNORED_SUFFIXES
            ):
                yield path


def source_fingerprint(context_dir: Path) -> str:
    """A short content hash of everything that goes into the images.

    Used as the tag of locally built images: a stable tag such as `latest` would leave running
    pods on the old image after a rebuild, while a content tag changes exactly when the code does.
    """
    digest = hashlib.sha256()
    for path in _fingerprint_files(context_dir):
        digest.update(path.relative_to(context_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return f"src-{digest.hexdigest()[:12]}"


@dataclass(frozen=True)
class ImagesArgs:
    #: The build context: the repository root (`pip install .` needs pyproject.toml).
    context_dir: str
    #: Path of the shared Dockerfile; each service is one of its targets.
    dockerfile: str
    services: Sequence[str]
    tag: str
    registry: ImageRegistry
    #: e.g. ("linux/amd64",) when building on an arm64 laptop for an amd64 cluster.
    platforms: Sequence[str] = ()


class Images(pulumi.ComponentResource):
    """Builds (and for ECR, pushes) one image per service; `refs` maps service → image ref."""

    refs: Mapping[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: ImagesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workflow-runtime:index:Images", name, None, opts)
        push = args.registry is ImageRegistry.ECR

        refs: dict[str, pulumi.Output[str]] = {}
        for service in args.services:
            repository, registries = self._destination(name, service, args.registry)
            image = docker_build.Image(
                f"{name}-{service}",
                context=docker_build.BuildContextArgs(location=args.context_dir),
                dockerfile=docker_build.DockerfileArgs(location=args.dockerfile),
                target=service,
                tags=[pulumi.Output.concat(repository, ":", args.tag)],
                platforms=list(args.platforms) or None,
                push=push,
                # Without a registry the image must land in the local daemon for `kind load`.
                load=not push,
                registries=registries,
                labels={"org.opencontainers.image.title": f"{REPOSITORY_PREFIX}-{service}"},
                opts=pulumi.ResourceOptions(parent=self),
            )
            refs[service] = image.ref

        self.refs = refs
        self.register_outputs({f"{service}Ref": ref for service, ref in refs.items()})

    def _destination(
        self, name: str, service: str, registry: ImageRegistry
    ) -> tuple[pulumi.Input[str], list[docker_build.RegistryArgs] | None]:
        """Repository name (without tag) and the credentials to push there, if any."""
        if registry is ImageRegistry.LOCAL:
            return f"{REPOSITORY_PREFIX}/{service}", None

        repository = aws.ecr.Repository(
            f"{name}-{service}-repository",
            name=f"{REPOSITORY_PREFIX}/{service}",
            image_tag_mutability="MUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                scan_on_push=True
            ),
            tags={"app.kubernetes.io/part-of": REPOSITORY_PREFIX},
            opts=pulumi.ResourceOptions(parent=self),
        )
        token = aws.ecr.get_authorization_token_output(
            registry_id=repository.registry_id,
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        credentials = docker_build.RegistryArgs(
            address=repository.repository_url.apply(lambda url: url.split("/", 1)[0]),
            username=token.user_name,
            password=pulumi.Output.secret(token.password),
        )
        return repository.repository_url, [credentials]
