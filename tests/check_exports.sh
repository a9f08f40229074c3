#!/bin/sh
# check_exports.sh LIB - fail unless LIB's dynamic symbol table defines exactly the allowlist.
lib=$1
allow="_Exit _exit abort aligned_alloc calloc execl execle execlp execv execve execvp execvpe fexecve free malloc memalign posix_memalign pthread_create pvalloc realloc reallocarray valloc"
got=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TWDBVi]$/ {print $3}' | sed 's/@.*//' | sort | tr '\n' ' ' | sed 's/ $//')
want=$(echo $allow | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')
if [ "$got" != "$want" ]; then
    echo "exports differ from the allowlist"
    echo "  got:  $got"
    echo "  want: $want"
    exit 1
fi
# No undefined Py* symbol: the library must load into programs without libpython (pylayout.h).
py=$(nm -D --undefined-only "$lib" | awk '{print $2}' | grep -E '^_?Py' || true)
if [ -n "$py" ]; then
    echo "undefined CPython symbols: $py"
    exit 1
fi
echo "exports ok: $got"
