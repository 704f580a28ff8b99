/*
 * kvault: a consumed message's headers without parsing an empty list.
 *
 * rd_kafka_message_headers() parses a v2 record's header bytes on first
 * access, and to read the count it builds a shadow buffer: a calloc of a
 * whole rd_kafka_buf_t, a segment, and their frees, for every record,
 * even when the count is zero. For small records without headers that was
 * ~1.2 s of a 5.75 M-record snapshot's ~10.5 s of CPU (BENCHMARKS.md).
 *
 * The count is a zigzag varint: zero is the single byte 0x00, which
 * rd_kafka_msg_headers_parse() answers with RD_KAFKA_RESP_ERR__NOENT. This
 * answers the same without the buffer and calls librdkafka for every other
 * message, so its results are librdkafka's own. It is compiled against the
 * private headers of the very librdkafka source tree that rdkafka-sys
 * built and links (build.rs), so the struct layout is the compiler's, not
 * a guess.
 */
#include "rdkafka_int.h"
#include "rdkafka_msg.h"

rd_kafka_resp_err_t
kvault_message_headers(const rd_kafka_message_t *rkmessage,
                       rd_kafka_headers_t **hdrsp) {
        const rd_kafka_msg_t *rkm =
            rd_kafka_message2msg((rd_kafka_message_t *)rkmessage);

        if (!rkm->rkm_headers && !(rkm->rkm_flags & RD_KAFKA_MSG_F_PRODUCER)) {
                const rd_kafkap_bytes_t *b = &rkm->rkm_u.consumer.binhdrs;
                if (RD_KAFKAP_BYTES_LEN(b) == 0 ||
                    ((const unsigned char *)b->data)[0] == 0)
                        return RD_KAFKA_RESP_ERR__NOENT;
        }
        return rd_kafka_message_headers(rkmessage, hdrsp);
}
