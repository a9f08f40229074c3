#!/bin/sh
# check_exports.sh LIB - fail unless LIB's dynamic symbol table defines exactly the allowlist.
lib=$1
allow="_Exit _exit abort aligned_alloc calloc free malloc memalign posix_memalign pvalloc realloc reallocarray valloc"
got=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TWDBVi]$/ {print $3}' | sed 's/@.*//' | sort | tr '\n' ' ' | sed 's/ $//')
want=$(echo $allow | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')
if [ "$got" != "$want" ]; then
    echo "exports differ from the allowlist"
    echo "  got:  $got"
    echo "  want: $want"
    exit 1
fi
echo "exports ok: $got"
