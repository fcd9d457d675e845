//! BPF_PROG_TEST_RUN (XDP live frames) for the traffic generator.
