"""Where an object-storage pool lives: an S3-compatible endpoint, bucket, prefix and keys.

These settings cross boundaries (CLI options, the pool registration, the Prefect block), so
they are a pydantic model; the secret key is a `SecretStr` and never shows in repr, logs or
error messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

if TYPE_CHECKING:
    import pyarrow.fs as pafs

Addressing = Literal["path", "virtual"]
LockMode = Literal["governance", "compliance"]
MIN_PART_SIZE = 5 << 20  # S3's smallest part (all but the last)
DEFAULT_PART_SIZE = 8 << 20


class S3Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bucket: str = Field(min_length=3, max_length=63, description="Bucket holding the pool")
    prefix: str = Field(default="", description="Key prefix of the pool inside the bucket")
    endpoint_url: str | None = Field(
        default=None, description="http(s)://host:port of the S3 service (None: AWS for the region)"
    )
    region: str = "us-east-1"
    addressing: Addressing = Field(
        default="path", description="path: endpoint/bucket/key; virtual: bucket.endpoint/key"
    )
    access_key_id: str | None = Field(default=None, description="None: boto3's default credential chain")
    secret_access_key: SecretStr | None = None
    verify_tls: bool = True
    ca_bundle: str | None = Field(default=None, description="PEM file of the CA that signed the endpoint")
    object_lock_mode: LockMode | None = Field(
        default=None, description="S3 Object Lock retention for every object written (immutability)"
    )
    retention_days: int = Field(default=0, ge=0, le=36500)
    part_size: int = Field(default=DEFAULT_PART_SIZE, ge=MIN_PART_SIZE, le=5 << 30)
    max_attempts: int = Field(default=8, ge=1, le=20, description="Tries per request (throttling, 5xx)")
    conditional_writes: bool = Field(
        default=True, description="Send If-None-Match: * so the service itself refuses a rewrite"
    )

    @field_validator("prefix")
    @classmethod
    def _clean_prefix(cls, value: str) -> str:
        value = value.strip("/")
        if any(part in ("", ".", "..") for part in value.split("/")) and value:
            raise ValueError(f"S3 prefix {value!r} must be '/'-separated names without '.', '..' or '//'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> S3Settings:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both the S3 access key id and the secret access key, or neither")
        if self.object_lock_mode and not self.retention_days:
            raise ValueError("S3 Object Lock needs --retention-days (how long backups stay undeletable)")
        if self.retention_days and not self.object_lock_mode:
            raise ValueError("--retention-days needs an Object Lock mode (governance or compliance)")
        return self

    @property
    def location(self) -> str:
        """The pool's location as shown in `pool list` and stored in the registration."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def catalog_root(self) -> str:
        """The pool root as a path inside `pyarrow_filesystem()` (bucket/prefix)."""
        return f"{self.bucket}/{self.prefix}".rstrip("/")

    def key_of(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def boto3_client(self) -> Any:
        """A boto3 S3 client with retries on throttling and 5xx (botocore's standard mode:
        exponential backoff with jitter, `max_attempts` tries)."""
        import boto3
        from botocore.config import Config

        config = Config(
            region_name=self.region,
            s3={"addressing_style": self.addressing},
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            max_pool_connections=32,
            connect_timeout=10,
            read_timeout=60,
            # botocore >= 1.36 adds CRC trailers many S3-compatible services reject; send a
            # checksum only where the API demands one (Content-MD5 is sent for Object Lock).
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        verify: bool | str = self.ca_bundle if (self.verify_tls and self.ca_bundle) else self.verify_tls
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key.get_secret_value()
            if self.secret_access_key
            else None,
            verify=verify,
            config=config,
        )

    def pyarrow_filesystem(self) -> pafs.S3FileSystem:
        """The same bucket on pyarrow's S3 filesystem, for DuckDB readers such as an analyst's
        notebook: the pool's addressing, region, CA bundle and retries. pyarrow cannot skip
        certificate checks, so with `verify_tls=False` give the endpoint's CA as `ca_bundle`
        (the pool's own catalog then goes through boto3: storage/s3arrowfs.py)."""
        import pyarrow.fs as pafs

        options: dict[str, Any] = {
            "region": self.region,
            "force_virtual_addressing": self.addressing == "virtual",
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=self.max_attempts),
        }
        if self.access_key_id and self.secret_access_key:
            options["access_key"] = self.access_key_id
            options["secret_key"] = self.secret_access_key.get_secret_value()
        if self.endpoint_url:
            scheme, _, host = self.endpoint_url.partition("://")
            options["scheme"] = scheme
            options["endpoint_override"] = host.rstrip("/")
        if self.ca_bundle:
            options["tls_ca_file_path"] = self.ca_bundle
        return pafs.S3FileSystem(**options)
