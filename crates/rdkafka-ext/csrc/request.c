/*
 * kvault: one raw request of any API, on the client's own broker
 * connection.
 *
 * librdkafka has no calls for client quotas, and the rest of a cluster's
 * state (ACLs, SCRAM users, broker configs) kvault reads and writes the
 * same way: it encodes a request body in Rust, this sends it to a broker
 * through librdkafka's request machinery (so the connection, TLS and SASL
 * are librdkafka's own, and the header, flexible-version tags and
 * correlation are librdkafka's too) and hands the response body back
 * undecoded, for Rust to decode (src/request.rs).
 *
 * Compiled against the private headers of the very librdkafka source tree
 * that rdkafka-sys built and links (build.rs), like fetch.c.
 */
#include "kvault_raw.h"
#include "rdkafka_request.h"

struct kvault_req {
        rd_kafka_resp_err_t err;
        char *body;
        size_t len;
};

static void kvault_req_resp_cb(rd_kafka_t *rk,
                               rd_kafka_broker_t *rkb,
                               rd_kafka_resp_err_t err,
                               rd_kafka_buf_t *reply,
                               rd_kafka_buf_t *request,
                               void *opaque) {
        struct kvault_req *st = opaque;
        (void)rk;
        (void)rkb;
        (void)request;
        /* The waiting call has given up and its state is gone (as in
         * librdkafka's own rd_kafka_query_watermark_offsets). */
        if (err == RD_KAFKA_RESP_ERR__DESTROY)
                return;
        if (!err && reply) {
                size_t n = rd_slice_remains(&reply->rkbuf_reader);
                st->body = rd_malloc(n ? n : 1);
                st->len  = rd_slice_read(&reply->rkbuf_reader, st->body, n);
        }
        st->err = err ? err : RD_KAFKA_RESP_ERR_NO_ERROR;
}

int kvault_broker_wait_up(rd_kafka_t *rk, rd_kafka_broker_t *rkb,
                          rd_ts_t ts_end) {
        while (!rd_kafka_broker_is_up(rkb)) {
                int state = rd_kafka_brokers_get_state_version(rk);
                int left  = rd_timeout_remains(ts_end);
                if (rd_timeout_expired(left))
                        return 0;
                rd_kafka_broker_schedule_connection(rkb);
                if (rd_kafka_broker_is_up(rkb))
                        break;
                rd_kafka_brokers_wait_state_change(rk, state, left);
        }
        return 1;
}

rd_kafka_resp_err_t kvault_send_wait(rd_kafka_t *rk,
                                     rd_kafka_broker_t *rkb,
                                     rd_kafka_buf_t *rkbuf,
                                     rd_ts_t ts_end,
                                     char **body,
                                     size_t *len) {
        struct kvault_req st = {RD_KAFKA_RESP_ERR__IN_PROGRESS, NULL, 0};
        rd_kafka_q_t *rkq    = rd_kafka_q_new(rk);
        rd_kafka_broker_buf_enq_replyq(rkb, rkbuf, RD_KAFKA_REPLYQ(rkq, 0),
                                       kvault_req_resp_cb, &st);
        while (st.err == RD_KAFKA_RESP_ERR__IN_PROGRESS) {
                int left = rd_timeout_remains(ts_end);
                if (rd_timeout_expired(left)) {
                        /* A late reply finds the queue gone and its
                         * callback is told __DESTROY. */
                        st.err = RD_KAFKA_RESP_ERR__TIMED_OUT;
                        break;
                }
                rd_kafka_q_serve(rkq, left, 0, RD_KAFKA_Q_CB_CALLBACK,
                                 rd_kafka_poll_cb, NULL);
        }
        rd_kafka_q_destroy_owner(rkq);
        if (st.err) {
                rd_free(st.body);
                return st.err;
        }
        *body = st.body;
        *len  = st.len;
        return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Broker `broker_id` (any usable one when negative), connected, with a
 * reference the caller releases; NULL when none is up by `ts_end`. */
static rd_kafka_broker_t *kvault_broker_up(rd_kafka_t *rk,
                                           int32_t broker_id,
                                           rd_ts_t ts_end) {
        rd_kafka_broker_t *rkb;
        if (broker_id >= 0)
                rkb = rd_kafka_broker_find_by_nodeid(rk, broker_id);
        else
                rkb = rd_kafka_broker_any_usable(
                    rk, rd_timeout_remains(ts_end), RD_DO_LOCK, 0,
                    "kvault request");
        if (rkb && !kvault_broker_wait_up(rk, rkb, ts_end)) {
                rd_kafka_broker_destroy(rkb);
                return NULL;
        }
        return rkb;
}

/* The highest version of API `api` in [minv, maxv] that broker
 * `broker_id` (any when negative) speaks, in `*ver`. */
rd_kafka_resp_err_t kvault_api_version(rd_kafka_t *rk,
                                       int32_t broker_id,
                                       int16_t api,
                                       int16_t minv,
                                       int16_t maxv,
                                       int timeout_ms,
                                       int16_t *ver) {
        rd_ts_t ts_end = rd_timeout_init(timeout_ms);
        rd_kafka_broker_t *rkb = kvault_broker_up(rk, broker_id, ts_end);
        if (!rkb)
                return broker_id >= 0 ? RD_KAFKA_RESP_ERR__UNKNOWN_BROKER
                                      : RD_KAFKA_RESP_ERR__TIMED_OUT;
        *ver = rd_kafka_broker_ApiVersion_supported(rkb, api, minv, maxv,
                                                    NULL);
        rd_kafka_broker_destroy(rkb);
        return *ver == -1 ? RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE
                          : RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Sends `req` (`req_len` bytes: the body of API `api` version `ver`,
 * without the top-level tags a flexible version ends with, which
 * librdkafka adds) to broker `broker_id` (any when negative). On success
 * `*body` (freed with kvault_request_free) holds the response after its
 * header. */
rd_kafka_resp_err_t kvault_request_raw(rd_kafka_t *rk,
                                       int32_t broker_id,
                                       int16_t api,
                                       int16_t ver,
                                       int8_t flexible,
                                       const char *req,
                                       size_t req_len,
                                       int timeout_ms,
                                       char **body,
                                       size_t *len) {
        /* The request times out first and answers __TIMED_OUT; the wait
         * lasts a second longer. */
        rd_ts_t ts_end = rd_timeout_init(timeout_ms + 1000);
        rd_kafka_broker_t *rkb;
        rd_kafka_buf_t *rkbuf;
        rd_kafka_resp_err_t err;

        *body = NULL;
        *len  = 0;
        rkb   = kvault_broker_up(rk, broker_id, ts_end);
        if (!rkb)
                return broker_id >= 0 ? RD_KAFKA_RESP_ERR__UNKNOWN_BROKER
                                      : RD_KAFKA_RESP_ERR__TIMED_OUT;
        if (rd_kafka_broker_ApiVersion_supported(rkb, api, ver, ver, NULL) !=
            ver) {
                rd_kafka_broker_destroy(rkb);
                return RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE;
        }
        rkbuf = rd_kafka_buf_new_flexver_request(rkb, api, 1, req_len + 16,
                                                 flexible ? rd_true
                                                          : rd_false);
        rd_kafka_buf_write(rkbuf, req, req_len);
        rd_kafka_buf_ApiVersion_set(rkbuf, ver, 0);
        rd_kafka_buf_set_abs_timeout(rkbuf, timeout_ms, 0);
        err = kvault_send_wait(rk, rkb, rkbuf, ts_end, body, len);
        rd_kafka_broker_destroy(rkb);
        return err;
}

void kvault_request_free(char *body) {
        rd_free(body);
}
