# Unit tests of the reporter (Criterion, label "unit"): the shared codec, the chunk reader with
# every corruption kind, the replay model, size parsing. They link mp_report_core (which carries
# the codec's objects) and build dumps in memory with tests/helpers/dumpgen.c.

set(MP_DUMPGEN ${PROJECT_SOURCE_DIR}/tests/helpers/dumpgen.c)

mp_unit_test(codec LIBS mp_report_core)
mp_unit_test(reader SOURCES ${MP_DUMPGEN} LIBS mp_report_core)
mp_unit_test(model SOURCES ${MP_DUMPGEN} LIBS mp_report_core)
mp_unit_test(sizes LIBS mp_report_core)
