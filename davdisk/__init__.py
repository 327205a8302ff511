"""davdisk: a self-hosted, encrypted, multi-user cloud disk spoken to over WebDAV."""

__version__ = "0.1.0"
