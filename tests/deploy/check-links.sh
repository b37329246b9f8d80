#!/usr/bin/env bash
# Every relative link of the given Markdown files resolves: the file or directory exists, and a
# #fragment names a heading of the target (GitHub's anchors: lower case, punctuation dropped,
# spaces to dashes). Absolute URLs (scheme:) are not fetched.
#   check-links.sh ROOT FILE.md...   (FILEs relative to ROOT)
set -euo pipefail
root="$1"
shift
status=0

# The anchors of a Markdown file's headings, one per line (headings inside ``` fences skipped).
anchors() {
  awk '/^```/ { fence = !fence; next } !fence && /^#+ / { sub(/^#+ +/, ""); print }' "$1" |
    tr '[:upper:]' '[:lower:]' | sed -e 's/[^a-z0-9 _-]//g' -e 's/ /-/g'
}

for md in "$@"; do
  file="$root/$md"
  [[ -f "$file" ]] || { echo "FAIL: $md does not exist" >&2; status=1; continue; }
  dir=$(dirname "$file")
  # Inline links and images: ](target) or ](target "title"), outside code spans and fences.
  while IFS= read -r target; do
    [[ -z "$target" ]] && continue
    [[ "$target" =~ ^[a-zA-Z][a-zA-Z0-9+.-]*: ]] && continue   # http:, https:, mailto:
    path="${target%%#*}"
    frag=""
    [[ "$target" == *"#"* ]] && frag="${target#*#}"
    if [[ -z "$path" ]]; then
      dest="$file"
    else
      dest="$dir/$path"
      if [[ ! -e "$dest" ]]; then
        echo "FAIL: $md: link to $target: $path does not exist" >&2
        status=1
        continue
      fi
    fi
    if [[ -n "$frag" && "$dest" == *.md ]]; then
      if ! anchors "$dest" | grep -qxF -- "$frag"; then
        echo "FAIL: $md: link to $target: no heading #$frag in ${dest#"$root"/}" >&2
        status=1
      fi
    fi
  done < <(awk '/^```/ { fence = !fence; next } !fence' "$file" | sed 's/`[^`]*`//g' |
    grep -oE '\]\([^) ]+( "[^"]*")?\)' | sed -E 's/^\]\(([^) ]+).*/\1/')
done
((status == 0)) && echo "ok: every relative link of $# files resolves"
exit $status
