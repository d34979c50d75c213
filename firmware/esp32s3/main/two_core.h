/* The second core for the matrix products: a worker task pinned to core 1
 * computes the upper half of each product's rows while the caller (the
 * session, on core 0) computes the lower half. */
#pragma once

#include <stdint.h>

#include "lmf/model.h"

/* Starts the worker; returns what to put in the decoder state's `parallel`
 * (products below min_macs stay on the caller's core), or NULL when the
 * task could not be created (everything then runs on core 0). */
const lmf_parallel *two_core_start(uint32_t min_macs);
