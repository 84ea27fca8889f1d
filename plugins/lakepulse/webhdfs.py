"""A small WebHDFS (HDFS over HTTP) client, for status files and checks without a JVM.

Paths are plain absolute HDFS paths (``/lakepulse/_status/x.json``). Authentication is Hadoop's
"simple" mode: every request names the user with ``user.name``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from lakepulse.settings import HdfsSettings


class WebHdfsError(RuntimeError):
    """A WebHDFS call failed; names the operation, the path and the HTTP status."""

    def __init__(self, op: str, path: str, status: int | None, message: str) -> None:
        self.op = op
        self.path = path
        self.status = status
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"WebHDFS {op} {path}: {where}: {message}")


class WebHdfs:
    def __init__(self, hdfs: HdfsSettings, timeout: float = 30.0) -> None:
        self.base_url = hdfs.webhdfs_url
        self.user = hdfs.user
        self.timeout = timeout
        self.session = requests.Session()

    def _url(self, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"HDFS path must be absolute: {path!r}")
        return self.base_url + quote(path)

    def _call(
        self,
        method: str,
        op: str,
        path: str,
        params: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
        **kwargs: Any,
    ) -> requests.Response:
        query = {"op": op, "user.name": self.user, **(params or {})}
        try:
            response = self.session.request(
                method, self._url(path), params=query, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise WebHdfsError(op, path, None, f"{exc} (is the NameNode up?)") from exc
        if response.status_code not in ok:
            raise WebHdfsError(op, path, response.status_code, _remote_message(response))
        return response

    def mkdirs(self, path: str) -> bool:
        return bool(self._call("PUT", "MKDIRS", path).json()["boolean"])

    def status(self, path: str) -> dict[str, Any] | None:
        """The FileStatus of ``path``, or None when it does not exist."""
        response = self._call("GET", "GETFILESTATUS", path, ok=(200, 404))
        return None if response.status_code == 404 else response.json()["FileStatus"]

    def exists(self, path: str) -> bool:
        return self.status(path) is not None

    def list(self, path: str) -> list[dict[str, Any]]:
        """FileStatus dicts of a directory's entries (``pathSuffix`` is the entry's name)."""
        return self._call("GET", "LISTSTATUS", path).json()["FileStatuses"]["FileStatus"]

    def read_bytes(self, path: str) -> bytes:
        # The NameNode answers 307 with the DataNode holding the data; requests follows GETs.
        return self._call("GET", "OPEN", path).content

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read_bytes(path).decode(encoding)

    def write_bytes(self, path: str, data: bytes, overwrite: bool = True) -> None:
        """Create ``path`` (and missing parents) holding ``data``.

        Two steps, as the protocol requires: the NameNode answers 307 naming a DataNode, and the
        bytes go there. The first request carries no body, so nothing is sent twice.
        """
        params = {"overwrite": str(overwrite).lower()}
        redirect = self._call("PUT", "CREATE", path, params, ok=(307,), allow_redirects=False)
        location = redirect.headers.get("Location")
        if not location:
            raise WebHdfsError("CREATE", path, redirect.status_code, "redirect without Location")
        try:
            response = self.session.put(location, data=data, timeout=self.timeout)
        except requests.RequestException as exc:
            raise WebHdfsError("CREATE", path, None, f"DataNode {location}: {exc}") from exc
        if response.status_code != 201:
            raise WebHdfsError("CREATE", path, response.status_code, _remote_message(response))

    def write_text(self, path: str, text: str, overwrite: bool = True) -> None:
        self.write_bytes(path, text.encode("utf-8"), overwrite)

    def rename(self, source: str, destination: str) -> bool:
        """Atomic within HDFS: write to a temporary name, then rename, for readers never to see
        half a file. False when the NameNode refused (e.g. the destination exists)."""
        response = self._call("PUT", "RENAME", source, {"destination": destination})
        return bool(response.json()["boolean"])

    def delete(self, path: str, recursive: bool = False) -> bool:
        """True when something was deleted, False when ``path`` did not exist."""
        params = {"recursive": str(recursive).lower()}
        return bool(self._call("DELETE", "DELETE", path, params).json()["boolean"])

    def content_summary(self, path: str) -> dict[str, Any]:
        """``length``, ``fileCount``, ``directoryCount``, ``spaceConsumed``, quotas."""
        return self._call("GET", "GETCONTENTSUMMARY", path).json()["ContentSummary"]

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> WebHdfs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _remote_message(response: requests.Response) -> str:
    """The Java exception WebHDFS returns as JSON, or the start of whatever body came back."""
    try:
        remote = response.json()["RemoteException"]
        # The message may carry the server-side stack trace: its first line says it all.
        message = str(remote.get("message", "")).strip().splitlines()
        return f"{remote.get('exception', 'error')}: {message[0] if message else ''}"
    except (ValueError, KeyError, TypeError):
        return response.text[:300].strip() or response.reason
