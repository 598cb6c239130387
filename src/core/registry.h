/*
 * src/core/registry.h - what the rest of the core (catalog.c) may ask of a
 * registry beyond the public API. Front ends never include it.
 */
#ifndef QREG_CORE_REGISTRY_H
#define QREG_CORE_REGISTRY_H

#include "drivers/driver.h"
#include "qreg.h"

/* The registry's driver and its state (*state_out may be NULL). The state
   lives until qreg_close(); the driver for ever. Any thread. */
const qreg_driver_t *qreg__registry_driver(qreg_t *reg, void **state_out);

/* The registry's db_url as given to qreg_open() (it lives until
   qreg_destroy()), or QREG_ECLOSED once qreg_close() has begun (QREG_EINVAL
   for NULL), with qreg_last_error() set like any public call's. Any
   thread. */
int qreg__registry_db_url(qreg_t *reg, const char **url_out);

/* Whether the registry is read-only and its driver's policy holds
   (qreg_read_only). Immutable after qreg_open(); any thread. */
bool qreg__registry_read_only(const qreg_t *reg);

/* Threads blocked right now in qreg_wait, qreg_cancel or qreg_prune_expired
   on this registry: lets a test force an interleaving ("the waiter is
   blocked") instead of sleeping and hoping. */
unsigned qreg__registry_blocked_callers(qreg_t *reg);

#endif /* QREG_CORE_REGISTRY_H */
