# End-to-end tests (label "e2e"): the C programs of tests/e2e/c/ run under libmemprof.so, checked
# through `memprof json` by run_e2e.py, and the Python scripts of tests/e2e/py/ by run_py.py.
# Included by tests/CMakeLists.txt when MP_E2E is on.

# The programs: built into the build directory's top level as e2e-<name>, where run_e2e.py looks.
# -O0 -fno-builtin: GCC otherwise removes malloc/free pairs it can see through, and the ledgers
# count every call. Frame pointers and -g: native stacks resolve to the functions and lines the
# tests expect.
set(MP_E2E_PROGRAMS allocators threads killed forkexec lastthread)
foreach(prog ${MP_E2E_PROGRAMS})
  add_executable(e2e_${prog} ${CMAKE_CURRENT_LIST_DIR}/c/${prog}.c)
  set_target_properties(e2e_${prog} PROPERTIES OUTPUT_NAME e2e-${prog}
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
  target_compile_definitions(e2e_${prog} PRIVATE _GNU_SOURCE)
  target_compile_options(e2e_${prog} PRIVATE -O0 -g -fno-builtin -fno-omit-frame-pointer)
  target_link_libraries(e2e_${prog} PRIVATE Threads::Threads)
  mp_warnings(e2e_${prog})
endforeach()

# The ctypes helper of the Python case py_threads (tests/e2e/py/mpthread.c): a native pthread
# started from Python. The C extension of py_cext is not built here: run_py.py compiles it at test
# time for each interpreter, with that interpreter's own headers.
add_library(e2e_pythread SHARED ${CMAKE_CURRENT_LIST_DIR}/py/mpthread.c)
set_target_properties(e2e_pythread PROPERTIES OUTPUT_NAME e2e-pythread
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
target_compile_options(e2e_pythread PRIVATE -O0 -g -fno-builtin -fno-omit-frame-pointer)
target_link_libraries(e2e_pythread PRIVATE Threads::Threads)
mp_warnings(e2e_pythread)

# The embedding program of the Python case py_embed (tests/e2e/py/mpembed.c): it loads libpython
# with dlopen, so it needs no interpreter's headers.
add_executable(e2e_pyembed ${CMAKE_CURRENT_LIST_DIR}/py/mpembed.c)
set_target_properties(e2e_pyembed PROPERTIES OUTPUT_NAME e2e-pyembed
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
target_link_libraries(e2e_pyembed PRIVATE ${CMAKE_DL_LIBS})
mp_warnings(e2e_pyembed)

# The benchmark's workload (scripts/bench): optimised like a real program, but -fno-builtin so
# that its malloc/free pairs stay.
add_executable(bench_churn ${PROJECT_SOURCE_DIR}/scripts/bench_churn.c)
set_target_properties(bench_churn PROPERTIES OUTPUT_NAME bench-churn
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
target_compile_definitions(bench_churn PRIVATE _GNU_SOURCE)
target_compile_options(bench_churn PRIVATE -O2 -g -fno-builtin -fno-omit-frame-pointer)
target_link_libraries(bench_churn PRIVATE Threads::Threads)
mp_warnings(bench_churn)

# The tests need the memprof command (the reporter).
if(MP_REPORTER)
  find_program(MP_E2E_PYTHON NAMES python3 REQUIRED)
  set(MP_E2E_CASES allocators allocators_native threads killed forkexec badenv outputs lastthread valgrind)
  foreach(case ${MP_E2E_CASES})
    add_test(NAME e2e.${case}
      COMMAND ${MP_E2E_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/run_e2e.py
              --build ${CMAKE_BINARY_DIR} --case ${case})
    set_tests_properties(e2e.${case} PROPERTIES LABELS e2e TIMEOUT 300 SKIP_RETURN_CODE 77)
  endforeach()
  # Python programs (run_py.py): each case on every pyenv 3.8-3.13 and /usr/bin/python3 present;
  # exit status 77 when none is.
  set(MP_E2E_PY_CASES py_lines py_allocators py_cext py_threads py_codereuse py_deep py_embed py_forkthread)
  foreach(case ${MP_E2E_PY_CASES})
    add_test(NAME e2e.${case}
      COMMAND ${MP_E2E_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/run_py.py
              --build ${CMAKE_BINARY_DIR} --cc ${CMAKE_C_COMPILER} --case ${case})
    set_tests_properties(e2e.${case} PROPERTIES LABELS e2e TIMEOUT 300 SKIP_RETURN_CODE 77)
  endforeach()
endif()
