#!/usr/bin/env sh
# Instructor Jupyter: turn nbgrader's formgrader, create-assignment and course list back on.
# usage: binder/instructor-mode.sh [path/to/jupyter]
set -e
JUPYTER=${1:-jupyter}
"$JUPYTER" labextension unlock --level=sys_prefix \
    @jupyter/nbgrader:formgrader @jupyter/nbgrader:create-assignment @jupyter/nbgrader:course-list >/dev/null 2>&1 || true
"$JUPYTER" server extension enable --sys-prefix \
    nbgrader.server_extensions.formgrader nbgrader.server_extensions.course_list >/dev/null 2>&1
"$JUPYTER" labextension enable --level=sys_prefix \
    @jupyter/nbgrader:formgrader @jupyter/nbgrader:create-assignment @jupyter/nbgrader:course-list >/dev/null 2>&1
echo "nbgrader instructor extensions enabled"
