# Unit tests of the preloaded library's modules (Criterion, label "unit"). Each test compiles the
# preload sources in again (MP_PRELOAD_TESTABLE) so the sanitizers of MP_SANITIZE apply to them;
# libmemprof.so itself is never linked. TSAN: also run in the ThreadSanitizer build (label "tsan").
#
# Criterion runs every Test() in its own forked process, and these tests rely on that: ring.c and
# stacks.c keep process-wide state (the ring registry, the stack table) that a test starts from
# empty. Do not run them with --no-fork.
#
# Keep every .timeout in one test program equal: Criterion 2.4.1's runner leaks its watchdog
# entry (LeakSanitizer then fails the run) when a test with a longer timeout ends while one with
# a shorter timeout is still running.

mp_unit_test(ring TSAN SOURCES ${MP_PRELOAD_TESTABLE})
mp_unit_test(stacks TSAN SOURCES ${MP_PRELOAD_TESTABLE})

mp_unit_test(config SOURCES ${MP_PRELOAD_TESTABLE})
# preload/keylog.h: the Python memo's key log (header only).
mp_unit_test(keylog)
# preload/pytls.c: CPython 3.12+'s thread-local state access, decoded from code bytes.
mp_unit_test(pytls SOURCES ${PROJECT_SOURCE_DIR}/preload/pytls.c)
# test_config checks that docs/CONFIG.md documents exactly the variables of mp_config_vars[].
target_compile_definitions(test_config PRIVATE MP_DOCS_DIR="${PROJECT_SOURCE_DIR}/docs")

# The writer's failure path through the mp_sys_write_all seam. writer.c and modules.c are
# compiled in; capture.c is not (the test defines the few globals the writer reads), so neither
# libunwind nor interposition is involved.
mp_unit_test(writer_sys TSAN SOURCES ${MP_PRELOAD_TESTABLE}
  ${PROJECT_SOURCE_DIR}/preload/writer.c ${PROJECT_SOURCE_DIR}/preload/modules.c
  ${PROJECT_SOURCE_DIR}/preload/pycode.c)

# preload/pylayout.c's offsets against the headers of every CPython 3.8-3.13 on the machine.
add_executable(print_pylayout ${CMAKE_CURRENT_SOURCE_DIR}/unit/print_pylayout.c
  ${PROJECT_SOURCE_DIR}/preload/pylayout.c)
target_include_directories(print_pylayout PRIVATE ${PROJECT_SOURCE_DIR}/preload)
mp_warnings(print_pylayout)
find_program(MP_PYTHON3 NAMES python3 REQUIRED)
add_test(NAME unit.pylayout_headers
  COMMAND ${MP_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/unit/check_pylayout.py
          $<TARGET_FILE:print_pylayout> ${PROJECT_SOURCE_DIR}/tests/dev/pyoffsets.c ${CMAKE_C_COMPILER})
set_tests_properties(unit.pylayout_headers PROPERTIES LABELS unit SKIP_RETURN_CODE 77)
