/* print_pylayout.c - prints preload/pylayout.c's tables, one "3.<minor> <field> <value>" line per
 * offset, for check_pylayout.py to compare with the interpreters' own headers. */
#include <stdio.h>

#include "pylayout.h"

#define F(field) printf("3.%u %s %d\n", minor, #field, L->field)

int
main(void) {
    for (unsigned minor = 0; minor < 20; minor++) {
        const mp_pylayout_t *L = mp_pylayout_for(3, minor);
        if (!L) continue;
        F(rt_finalizing);
        F(rt_tstate_current);
        F(rt_tss_key);
        F(ts_thread_id);
        F(ts_frame);
        F(ts_cframe);
        F(cf_current_frame);
        F(ts_current_frame);
        F(f_back);
        F(f_code);
        F(f_lasti);
        F(if_code);
        F(if_previous);
        F(if_instr);
        F(if_owner);
        F(if_is_entry);
        F(co_firstlineno);
        F(co_filename);
        F(co_name);
        F(co_qualname);
        F(co_linetable);
        F(co_code_adaptive);
        F(co_firsttraceable);
        F(ascii_size);
        F(compact_size);
    }
    return 0;
}
