"""Side-by-side WebDAV benchmark: davdisk against plain WsgiDAV and ``rclone serve webdav``."""
