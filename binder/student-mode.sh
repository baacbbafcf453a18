#!/usr/bin/env sh
# Student-facing Jupyter: turn off nbgrader's instructor tools (formgrader, create-assignment, course list)
# in the environment's own config; students keep "Validate" and the assignment list.
# usage: binder/student-mode.sh [path/to/jupyter]        (default: jupyter on PATH)
set -e
JUPYTER=${1:-jupyter}
"$JUPYTER" server extension disable --sys-prefix \
    nbgrader.server_extensions.formgrader nbgrader.server_extensions.course_list >/dev/null 2>&1
"$JUPYTER" labextension disable --level=sys_prefix \
    @jupyter/nbgrader:formgrader @jupyter/nbgrader:create-assignment @jupyter/nbgrader:course-list >/dev/null 2>&1
"$JUPYTER" labextension lock --level=sys_prefix \
    @jupyter/nbgrader:formgrader @jupyter/nbgrader:create-assignment @jupyter/nbgrader:course-list >/dev/null 2>&1
echo "nbgrader instructor extensions disabled (student mode)"
