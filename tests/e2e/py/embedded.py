"""embedded.py - run by mpembed (an embedding program that dlopens libpython; run_py.py:
py_embed): three 1 MB buffers live at once, made in a function and in a thread, then dropped."""
import threading

keep = []


def make():
    keep.append(bytearray(1000000))


make()
make()
t = threading.Thread(target=make)
t.start()
t.join()
del keep[:]
