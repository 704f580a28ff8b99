/*
 * kvault: one raw Fetch request, on the client's own broker connection.
 *
 * librdkafka's consumer hands out records, never the batches they came in:
 * a batch's producer id, its transactional flag and the control batches
 * (commit and abort markers, with their offsets and timestamps) stay
 * inside it. A point-in-time restore that keeps transactions whole needs
 * exactly those. This sends one Fetch (v4..v11, the versions whose layout
 * kvault decodes) for one partition to its leader, through librdkafka's
 * request machinery, so the connection, TLS and SASL are librdkafka's own,
 * and hands the response body back undecoded: the crate decodes it in
 * Rust (src/fetch.rs).
 *
 * It is compiled against the private headers of the very librdkafka source
 * tree that rdkafka-sys built and links (build.rs).
 */
#include "kvault_raw.h"
#include "rdkafka_partition.h"
#include "rdkafka_request.h"

/* Fetches from `offset` of `topic` [`partition`] with the isolation level
 * `isolation` (0: read_uncommitted), at most `max_bytes`. On success
 * `*body` (freed with kvault_fetch_free) holds the response after its
 * header, `*version` the Fetch version it answers. */
rd_kafka_resp_err_t kvault_fetch_raw(rd_kafka_t *rk,
                                     const char *topic,
                                     int32_t partition,
                                     int64_t offset,
                                     int32_t max_bytes,
                                     int8_t isolation,
                                     int timeout_ms,
                                     char **body,
                                     size_t *len,
                                     int16_t *version) {
        rd_kafka_topic_partition_list_t *parts;
        struct rd_kafka_partition_leader *leader;
        rd_list_t leaders;
        rd_kafka_buf_t *rkbuf;
        rd_kafka_resp_err_t err;
        /* The request times out first and answers __TIMED_OUT; the wait
         * lasts a second longer. */
        rd_ts_t ts_end = rd_timeout_init(timeout_ms + 1000);
        int16_t ver;

        *body = NULL;
        *len  = 0;
        parts = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, topic, partition);
        rd_list_init(&leaders, 1, rd_kafka_partition_leader_destroy_free);
        err = rd_kafka_topic_partition_list_query_leaders(rk, parts, &leaders,
                                                          timeout_ms);
        rd_kafka_topic_partition_list_destroy(parts);
        if (err || rd_list_cnt(&leaders) < 1) {
                rd_list_destroy(&leaders);
                return err ? err : RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
        }
        leader = rd_list_elem(&leaders, 0);
        /* The versions the leader speaks are known once its connection is
         * up: connect it now if the client has not yet. */
        if (!kvault_broker_wait_up(rk, leader->rkb, ts_end)) {
                rd_list_destroy(&leaders);
                return RD_KAFKA_RESP_ERR__TIMED_OUT;
        }
        ver = rd_kafka_broker_ApiVersion_supported(leader->rkb,
                                                      RD_KAFKAP_Fetch, 4, 11,
                                                      NULL);
        if (ver == -1) {
                rd_list_destroy(&leaders);
                return RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE;
        }

        rkbuf = rd_kafka_buf_new_request(leader->rkb, RD_KAFKAP_Fetch, 1,
                                         64 + strlen(topic));
        rd_kafka_buf_write_i32(rkbuf, -1);        /* ReplicaId */
        rd_kafka_buf_write_i32(rkbuf, 0);         /* MaxWaitMs */
        rd_kafka_buf_write_i32(rkbuf, 0);         /* MinBytes */
        rd_kafka_buf_write_i32(rkbuf, max_bytes); /* MaxBytes */
        rd_kafka_buf_write_i8(rkbuf, isolation);  /* IsolationLevel */
        if (ver >= 7) {
                rd_kafka_buf_write_i32(rkbuf, 0);  /* SessionId */
                rd_kafka_buf_write_i32(rkbuf, -1); /* SessionEpoch: none */
        }
        rd_kafka_buf_write_i32(rkbuf, 1); /* Topics */
        rd_kafka_buf_write_str(rkbuf, topic, (size_t)-1);
        rd_kafka_buf_write_i32(rkbuf, 1); /* Partitions */
        rd_kafka_buf_write_i32(rkbuf, partition);
        if (ver >= 9)
                rd_kafka_buf_write_i32(rkbuf, -1); /* CurrentLeaderEpoch */
        rd_kafka_buf_write_i64(rkbuf, offset);
        if (ver >= 5)
                rd_kafka_buf_write_i64(rkbuf, -1); /* LogStartOffset */
        rd_kafka_buf_write_i32(rkbuf, max_bytes);  /* PartitionMaxBytes */
        if (ver >= 7)
                rd_kafka_buf_write_i32(rkbuf, 0); /* ForgottenTopicsData */
        if (ver >= 11)
                rd_kafka_buf_write_str(rkbuf, "", 0); /* RackId */
        rd_kafka_buf_ApiVersion_set(rkbuf, ver, 0);
        rd_kafka_buf_set_abs_timeout(rkbuf, timeout_ms, 0);

        err = kvault_send_wait(rk, leader->rkb, rkbuf, ts_end, body, len);
        rd_list_destroy(&leaders);
        if (err)
                return err;
        *version = ver;
        return RD_KAFKA_RESP_ERR_NO_ERROR;
}

void kvault_fetch_free(char *body) {
        rd_free(body);
}
