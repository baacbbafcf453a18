#!/usr/bin/env sh
# Student-facing Jupyter: turn off nbgrader's instructor tools (formgrader, create-assignment, course list);
# students keep "Validate" and the assignment list.
# usage: binder/student-mode.sh [path/to/jupyter]        (default: jupyter on PATH)
# GM_JUPYTER_LEVEL picks the config it writes: sys_prefix (default: the environment's own), user
# ($JUPYTER_CONFIG_DIR, as the browser tests use it) or system.
set -e
JUPYTER=${1:-jupyter}
LEVEL=${GM_JUPYTER_LEVEL:-sys_prefix}
case "$LEVEL" in
    sys_prefix) SERVER_LEVEL=--sys-prefix ;;
    user|system) SERVER_LEVEL=--$LEVEL ;;
    *) echo "GM_JUPYTER_LEVEL must be sys_prefix, user or system, not '$LEVEL'" >&2; exit 2 ;;
esac
"$JUPYTER" server extension disable "$SERVER_LEVEL" \
    nbgrader.server_extensions.formgrader nbgrader.server_extensions.course_list >/dev/null 2>&1
"$JUPYTER" labextension disable --level="$LEVEL" \
    @jupyter/nbgrader:formgrader @jupyter/nbgrader:create-assignment @jupyter/nbgrader:course-list >/dev/null 2>&1
"$JUPYTER" labextension lock --level="$LEVEL" \
    @jupyter/nbgrader:formgrader @jupyter/nbgrader:create-assignment @jupyter/nbgrader:course-list >/dev/null 2>&1
echo "nbgrader instructor extensions disabled (student mode, $LEVEL config)"
