# mp_warnings(target): the project's warning set; -Werror when MP_WERROR is on.
function(mp_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wstrict-prototypes
    -Wmissing-prototypes -Wno-unused-parameter)
  if(MP_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
