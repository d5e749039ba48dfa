// A CUDA injection library: loaded by the CUDA driver into any program run with
//   CUDA_INJECTION64_PATH=/path/libgpu-timeline.so GPU_TIMELINE_OUT=FILE program ...
// it records every kernel, copy and memset the program runs on the GPU with CUPTI's activity API (CUDA graphs'
// kernels too) and writes them to FILE, one line each, when the program's CUDA context goes away or it exits:
//   K start_ns end_ns stream name           a kernel (name as the compiler mangled it)
//   C start_ns end_ns stream bytes kind     a copy (kind: CUPTI's CUpti_ActivityMemcpyKind, 1 HtoD, 2 DtoH, 8 DtoD)
//   S start_ns end_ns stream bytes          a memset
// scripts/gpu-timeline.py sums them up. Build (device-run.sh's gpu_timeline_lib does, for TIMELINE=1 placements):
//   gcc -shared -fPIC -O2 -I$CUDA/include scripts/gpu-timeline.c -L$CUPTI_LIB -lcupti -o libgpu-timeline.so
#include <cupti.h>

#include <stdio.h>
#include <stdlib.h>

static FILE * timeline_out = NULL;

static void CUPTIAPI buffer_requested(uint8_t ** buffer, size_t * size, size_t * max_records) {
    *size        = 16u << 20;
    *buffer      = (uint8_t *) aligned_alloc(8, *size);
    *max_records = 0;
}

static void write_record(const CUpti_Activity * record) {
    switch (record->kind) {
        case CUPTI_ACTIVITY_KIND_KERNEL:
        case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
            const CUpti_ActivityKernel10 * k = (const CUpti_ActivityKernel10 *) record;
            fprintf(timeline_out, "K %llu %llu %u %s\n", (unsigned long long) k->start, (unsigned long long) k->end,
                k->streamId, k->name);
            break;
        }
        case CUPTI_ACTIVITY_KIND_MEMCPY: {
            const CUpti_ActivityMemcpy6 * c = (const CUpti_ActivityMemcpy6 *) record;
            fprintf(timeline_out, "C %llu %llu %u %llu %u\n", (unsigned long long) c->start, (unsigned long long) c->end,
                c->streamId, (unsigned long long) c->bytes, (unsigned) c->copyKind);
            break;
        }
        case CUPTI_ACTIVITY_KIND_MEMSET: {
            const CUpti_ActivityMemset4 * s = (const CUpti_ActivityMemset4 *) record;
            fprintf(timeline_out, "S %llu %llu %u %llu\n", (unsigned long long) s->start, (unsigned long long) s->end,
                s->streamId, (unsigned long long) s->bytes);
            break;
        }
        default:
            break;
    }
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream_id, uint8_t * buffer, size_t size, size_t valid) {
    (void) ctx;
    (void) stream_id;
    (void) size;
    CUpti_Activity * record = NULL;
    while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
        write_record(record);
    }
    size_t dropped = 0;
    if (cuptiActivityGetNumDroppedRecords(ctx, stream_id, &dropped) == CUPTI_SUCCESS && dropped > 0) {
        fprintf(timeline_out, "D %zu\n", dropped);
    }
    free(buffer);
}

static void flush_records(void) {
    cuptiActivityFlushAll(1);
    fflush(timeline_out);
}

// the context's records are gone with it: flush them while it is still there
static void CUPTIAPI on_resource(void * userdata, CUpti_CallbackDomain domain, CUpti_CallbackId id, const void * data) {
    (void) userdata;
    (void) data;
    if (domain == CUPTI_CB_DOMAIN_RESOURCE && id == CUPTI_CBID_RESOURCE_CONTEXT_DESTROY_STARTING) {
        flush_records();
    }
}

static int check(CUptiResult result, const char * what) {
    if (result == CUPTI_SUCCESS) {
        return 1;
    }
    const char * message = NULL;
    cuptiGetResultString(result, &message);
    fprintf(stderr, "gpu-timeline: %s: %s\n", what, message != NULL ? message : "unknown CUPTI error");
    return 0;
}

int InitializeInjection(void) {
    const char * path = getenv("GPU_TIMELINE_OUT");
    if (path == NULL || (timeline_out = fopen(path, "w")) == NULL) {
        fprintf(stderr, "gpu-timeline: set GPU_TIMELINE_OUT to a file it can write (%s)\n", path != NULL ? path : "unset");
        return 0;
    }
    CUpti_SubscriberHandle subscriber;
    if (!check(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed), "cuptiActivityRegisterCallbacks") ||
        !check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "cuptiActivityEnable(kernels)") ||
        !check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY), "cuptiActivityEnable(copies)") ||
        !check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET), "cuptiActivityEnable(memsets)") ||
        !check(cuptiSubscribe(&subscriber, on_resource, NULL), "cuptiSubscribe") ||
        !check(cuptiEnableCallback(1, subscriber, CUPTI_CB_DOMAIN_RESOURCE, CUPTI_CBID_RESOURCE_CONTEXT_DESTROY_STARTING),
            "cuptiEnableCallback")) {
        return 0;
    }
    atexit(flush_records);
    return 1;
}
