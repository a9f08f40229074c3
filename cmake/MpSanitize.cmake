# mp_sanitize(target): apply MP_SANITIZE ("address;undefined" or "thread") to a target that is
# not injected into other processes (the reporter, the tests). libmemprof.so is never sanitized.
function(mp_sanitize target)
  if(MP_SANITIZE)
    string(REPLACE ";" "," san "${MP_SANITIZE}")
    target_compile_options(${target} PRIVATE -fsanitize=${san} -fno-omit-frame-pointer
      -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${san})
  endif()
endfunction()
