#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the shared HTTP request corpus.
#
#   fuzz/seed.sh [CORPUS_DIR]
#
# CORPUS_DIR defaults to ../shared/corpus/http-requests beside the
# repository (where CI has it). Idempotent: files are named after their
# source, so running it again only refreshes them. fuzz/corpus/ is
# git-ignored; libFuzzer adds what it finds there during runs.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
src="${1:-$here/../../shared/corpus/http-requests}"
if [ ! -d "$src/valid" ] || [ ! -d "$src/invalid" ]; then
    echo "seed.sh: no request corpus at $src" >&2
    exit 1
fi
out="$here/corpus"
mkdir -p "$out"/{parse_head,split_equivalence,chunked,percent_decode,conn,differential}

# Configuration prefixes (fuzz/checks.rs CFG = 4 bytes) for the targets that
# take their choices from the input's first bytes: split points and limits
# for split_equivalence; high-water mark, body limit, EOF and read sizes for
# conn. A few fixed variants per file.
prefixes=('\x00\x00\x01\x00' '\x01\x05\x02\x01' '\x02\x01\x00\x03' '\x03\x02\x03\x00')

n=0
for f in "$src"/valid/*.http "$src"/invalid/*.http; do
    name="$(basename "$(dirname "$f")")_$(basename "$f" .http)"
    cp "$f" "$out/parse_head/$name"
    cp "$f" "$out/differential/$name"
    for i in "${!prefixes[@]}"; do
        { printf "${prefixes[$i]}"; cat "$f"; } >"$out/split_equivalence/${name}_$i"
        { printf "${prefixes[$i]}"; cat "$f"; } >"$out/conn/${name}_$i"
    done
    # The request-target of the first request line.
    head -n 1 "$f" | tr -d '\r' | awk '{ printf "%s", $2 }' >"$out/percent_decode/$name"
    # Chunked bodies: what follows the first head of a chunked request.
    if grep -qai '^transfer-encoding:.*chunked' "$f"; then
        perl -0777 -ne 'print $1 if /\r\n\r\n(.*)\z/s' "$f" >"$out/chunked/$name"
    fi
    n=$((n + 1))
done

# Hand-made chunked bodies (extensions, trailers, leading zeros, splits).
printf '5\r\nhello\r\n0\r\n\r\n' >"$out/chunked/hand_simple"
printf '3;a=b;c="d e"\r\nabc\r\n000\r\nX-T: v\r\n\r\n' >"$out/chunked/hand_ext_trailer"
printf '00000010\r\n0123456789abcdef\r\n0\r\n\r\nGET / HTTP/1.1\r\n' >"$out/chunked/hand_pipelined"
printf '1 ;x\r\na\r\nA\r\n0123456789\r\n0\r\nHost: x\r\n\r\n' >"$out/chunked/hand_forbidden_trailer"
printf '/a%%20b/%%zz/%%4' >"$out/percent_decode/hand_escapes"
printf 'http://h:1/p%%2Fq?x=%%41#frag' >"$out/percent_decode/hand_absolute"

echo "seed.sh: seeded from $n files into $out"
