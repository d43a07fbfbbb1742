/* The monotonic clock the commands time themselves with (progress, ETAs, stage and step times). */
#ifndef R1_CORE_CLOCK_H
#define R1_CORE_CLOCK_H

/* Seconds since an arbitrary fixed point; never goes back. */
double clock_seconds(void);

#endif
