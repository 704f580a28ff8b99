/*
 * kvault: what fetch.c and request.c share (defined in request.c): wait
 * until a broker is connected, and send a request on its connection and
 * wait for the answer's body.
 */
#ifndef KVAULT_RAW_H
#define KVAULT_RAW_H

#include "rdkafka_int.h"
#include "rdkafka_buf.h"
#include "rdkafka_broker.h"

/* Waits until `rkb` is connected (scheduling the connection), at most
 * until `ts_end`; whether it is. */
int kvault_broker_wait_up(rd_kafka_t *rk, rd_kafka_broker_t *rkb,
                          rd_ts_t ts_end);

/* Sends `rkbuf` (its version and timeout set) on `rkb` and waits for the
 * answer until `ts_end`; on success `*body` (freed with rd_free) holds the
 * response after its header. */
rd_kafka_resp_err_t kvault_send_wait(rd_kafka_t *rk,
                                     rd_kafka_broker_t *rkb,
                                     rd_kafka_buf_t *rkbuf,
                                     rd_ts_t ts_end,
                                     char **body,
                                     size_t *len);

#endif
