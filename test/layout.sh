#!/usr/bin/env bash
# test/layout.sh [tree]: fail if files of src/ call each other in a loop,
# or if the library installs a planner, executor or utility hook (Citus
# loads first and owns those: the schema rules of the SQL contract).
#
# nm lists the symbols each object of src/*.c defines and needs (it builds
# them first if one is missing); file a depends on file b when b defines a
# symbol a needs.  tsort orders that graph, or names the files of each loop.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
objs=$(ls src/*.c | sed 's/\.c$/.o/')
for o in $objs; do [ -f "$o" ] || { make -s >/dev/null; break; }; done

edges=$(for o in $objs; do
            nm -g --defined-only "$o" | awk -v f="${o#src/}" 'NF == 3 { print "def", $3, f }'
            nm -u "$o" | awk -v f="${o#src/}" '{ print "use", $2, f }'
        done | awk '$1 == "def" { def[$2] = $3; next }
                    { use[$3 " " $2] = 1 }
                    END { for (u in use) { split(u, p, " ")
                                           if ((p[2] in def) && def[p[2]] != p[1]) print p[1], def[p[2]] } }' | sort -u)

if ! loops=$(printf '%s\n' "$edges" | tsort 2>&1 >/dev/null); then
    printf '%s\n' "$loops" | awk '/contains a loop/ { if (c) print "not ok - call cycle: " c " -> " first; c = ""; next }
                                  { sub(/^tsort: /, ""); if (c == "") { c = first = $0 } else c = c " -> " $0 }
                                  END { if (c) print "not ok - call cycle: " c " -> " first }'
    exit 1
fi
if hooks=$(grep -nE '\b(planner_hook|create_upper_paths_hook|set_rel_pathlist_hook|post_parse_analyze_hook|Executor(Start|Run|Finish|End)_hook|ProcessUtility_hook|ExecutorCheckPerms_hook)\s*=' src/*.c); then
    echo "not ok - the library installs a hook that Citus owns:"
    echo "$hooks"
    exit 1
fi
echo "ok - no call cycles among $(echo "$objs" | wc -w) files in src/, and no planner, executor or utility hook"
