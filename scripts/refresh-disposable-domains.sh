#!/usr/bin/env bash
# `make disposable-domains`: refreshes the vendored throwaway-domain list,
# crates/web/data/disposable_email_blocklist.conf, from the community list
# github.com/disposable-email-domains/disposable-email-domains (CC0 1.0), and records where it came
# from in crates/web/data/PROVENANCE.md. The file is kept byte for byte as published; anything
# that is not one sorted, lowercase ASCII domain per line is refused, so the Worker's binary
# search stays right. Then run `make test` (the list's own tests, and the upload size check:
# the list is most of what the address checks add to the upload). Portable: bash 3.2, curl.
set -euo pipefail
cd "$(dirname "$0")/.."

REPO=disposable-email-domains/disposable-email-domains
BRANCH=${DISPOSABLE_BRANCH:-main}
URL=${DISPOSABLE_URL:-"https://raw.githubusercontent.com/${REPO}/${BRANCH}/disposable_email_blocklist.conf"}
OUT=crates/web/data/disposable_email_blocklist.conf
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

echo "==> fetching $URL"
curl -fsSL --max-time 60 "$URL" -o "$tmp"

lines=$(wc -l < "$tmp" | tr -d ' ')
if [ "$lines" -lt 1000 ]; then
  echo "==> refused: only $lines lines (a list this short is not the real one)" >&2
  exit 1
fi
if LC_ALL=C grep -vqE '^[a-z0-9.-]+\.[a-z0-9-]+$' "$tmp"; then
  echo "==> refused: a line that is not one lowercase ASCII domain:" >&2
  LC_ALL=C grep -vnE '^[a-z0-9.-]+\.[a-z0-9-]+$' "$tmp" | head -5 >&2
  exit 1
fi
if ! LC_ALL=C sort -c -u "$tmp" 2>/dev/null; then
  echo "==> refused: the list is not sorted bytewise with each domain once" >&2
  exit 1
fi

# The commit the branch points at, when GitHub's API answers (provenance only).
commit=$(curl -fsSL --max-time 30 -H 'accept: application/vnd.github.sha' \
  "https://api.github.com/repos/${REPO}/commits/${BRANCH}" 2>/dev/null || echo "unknown")
sha=$( (sha256sum "$tmp" 2>/dev/null || shasum -a 256 "$tmp") | cut -d' ' -f1)
cp "$tmp" "$OUT"
cat > crates/web/data/PROVENANCE.md <<MD
# Where the vendored data comes from

## disposable_email_blocklist.conf

- Source: https://github.com/${REPO}, file \`disposable_email_blocklist.conf\` on \`${BRANCH}\`
  (${URL}).
- Commit: ${commit}
- Fetched: $(date -u +%Y-%m-%d)
- Lines: ${lines}
- SHA-256: ${sha}
- License: CC0 1.0 Universal (public domain dedication), as the repository's LICENSE.txt says.
- Kept byte for byte as published. Refreshed by \`make disposable-domains\`
  (scripts/refresh-disposable-domains.sh), which refuses a list that is not one sorted, lowercase
  ASCII domain per line. A test (\`crates/web/src/disposable.rs\`) checks the file against this
  SHA-256, so a hand edit fails \`make test\`.
MD
echo "==> $lines domains, sha256 $sha; now run make test"
