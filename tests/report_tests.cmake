# Unit tests of the reporter (Criterion, label "unit"): the shared codec, the chunk reader with
# every corruption kind, the replay model, size parsing. They link mp_report_core (which carries
# the codec's objects) and build dumps in memory with tests/helpers/dumpgen.c.

set(MP_DUMPGEN ${PROJECT_SOURCE_DIR}/tests/helpers/dumpgen.c)

mp_unit_test(codec LIBS mp_report_core)
mp_unit_test(reader SOURCES ${MP_DUMPGEN} LIBS mp_report_core)
mp_unit_test(model SOURCES ${MP_DUMPGEN} LIBS mp_report_core)
mp_unit_test(sizes LIBS mp_report_core)

# The Python line-table decoders: handwritten vectors, then every offset of a corpus generated
# at test time by gen_linetables.py under each CPython found, checked against PyCode_Addr2Line.
mp_unit_test(pylines SOURCES ${PROJECT_SOURCE_DIR}/tests/helpers/pyfind.c LIBS mp_report_core)
target_compile_definitions(test_pylines PRIVATE MP_UNIT_DIR="${CMAKE_CURRENT_SOURCE_DIR}/unit")

# Python frames through the model, the per-line view, the by-line groups and both emitters, on
# dumps whose line tables come from each CPython found (gen_pycode.py).
mp_unit_test(perline SOURCES ${MP_DUMPGEN} ${PROJECT_SOURCE_DIR}/tests/helpers/pyfind.c
  LIBS mp_report_core)
target_compile_definitions(test_perline PRIVATE MP_UNIT_DIR="${CMAKE_CURRENT_SOURCE_DIR}/unit")
