#!/bin/sh
# Health of a rascore node: a C-ECHO with dcmtk's echoscu to the node's own storage SCP.
# Exit 0 when the SCP accepts the association and answers the echo.
#
# The calling AE title is $HEALTHCHECK_AET (default HEALTHCHECK) from 127.0.0.1: when
# RASCORE_ALLOWED_AETS or RASCORE_ALLOWED_HOSTS are set, they must admit it.
# With RASCORE_TLS_CERT/RASCORE_TLS_KEY set the port speaks TLS only; the check then presents the
# node's own certificate (needed only if the node verifies peers against RASCORE_TLS_CA, which
# must then trust it) and does not verify the node's certificate.
set -eu

called="${RASCORE_AE_TITLE:-RASCORE}"
port="${RASCORE_DICOM_PORT:-11112}"
calling="${HEALTHCHECK_AET:-HEALTHCHECK}"
host="${HEALTHCHECK_HOST:-127.0.0.1}"

set -- -aet "$calling" -aec "$called" -to 10 -ta 10 -td 10
if [ -n "${RASCORE_TLS_CERT:-}" ]; then
    set -- "$@" +tls "${RASCORE_TLS_KEY:?RASCORE_TLS_CERT is set but RASCORE_TLS_KEY is not}" \
        "$RASCORE_TLS_CERT" -pw -ic
fi
exec /usr/bin/echoscu "$@" "$host" "$port"
