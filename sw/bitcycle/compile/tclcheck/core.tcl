# Vivado stand-in, part 1: locations, errors, options, object handles, project and files.
# Every command a script may call is a proc that models its effect on an in-memory design; a
# mistake is an error naming the script's file:line. Nothing here writes into the project.
namespace eval ::tc {
    variable script ""        ;# the script under test (absolute path)
    variable python ""        ;# interpreter for the HDL reader
    variable catalog {}       ;# Xilinx IP catalog (xilinx_ip.py)
    variable project {}       ;# name dir part board_part
    variable files {}         ;# list of {path fileset kind global_include line}
    variable virtual {}       ;# path -> what Vivado generates there (bd, wrapper, bit, hwh)
    variable tops {}          ;# fileset -> top module
    variable bd {}            ;# name saved validated
    variable log {}           ;# vendor-only and informational records
    variable warnings {}
    array set cell {}         ;# cell name -> dict
    array set net {}          ;# /cell/pin -> net name
    array set members {}      ;# net name -> pins
    array set inet {}         ;# /cell/intf -> peer /cell/intf
    variable nets 0
    variable segments {}      ;# address map records
    variable hdl_cache {}
    # Vivado board files the generated projects name (board_part -> its device), as FINN's templates list them
    variable board_parts {
        tul.com.tw:pynq-z2:part0:1.0 xc7z020clg400-1
        www.digilentinc.com:pynq-z1:part0:1.0 xc7z020clg400-1
        avnet.com:ultra96v2:part0:1.2 xczu3eg-sbva484-1-i
        xilinx.com:zcu104:part0:1.1 xczu7ev-ffvc1156-2-e
    }
}

proc ::tc::where {} {
    # the innermost frame executing a line of the script under test
    for {set level [info frame]} {$level > 0} {incr level -1} {
        set f [info frame $level]
        if {[dict exists $f file] && [dict get $f file] eq $::tc::script} {
            return "[file tail $::tc::script]:[dict get $f line]"
        }
    }
    return "[file tail $::tc::script]:?"
}

proc ::tc::fail {msg} {
    return -code error -errorcode TCLCHECK "[::tc::where]: $msg"
}

proc ::tc::warn {msg} {
    lappend ::tc::warnings "[::tc::where]: $msg"
}

proc ::tc::record {what args} {
    lappend ::tc::log [dict create what $what where [::tc::where] {*}$args]
}

# Parse Vivado-style options. spec: flag -> 1 (takes a value) or 0 (switch). Returns
# {opts positional}; an unknown flag is an error naming the command and its flags.
proc ::tc::opts {cmd spec argv} {
    set opts {}
    set pos {}
    for {set i 0} {$i < [llength $argv]} {incr i} {
        set a [lindex $argv $i]
        if {[string index $a 0] eq "-" && ![string is double -strict $a] && $a ne "-"} {
            if {$a eq "-quiet" || $a eq "-verbose"} { dict set opts $a 1; continue }
            if {![dict exists $spec $a]} {
                ::tc::fail "$cmd: unknown option $a (the stand-in models: [join [dict keys $spec] {, }])"
            }
            if {[dict get $spec $a]} {
                incr i
                if {$i >= [llength $argv]} { ::tc::fail "$cmd: option $a needs a value" }
                dict set opts $a [lindex $argv $i]
            } else {
                dict set opts $a 1
            }
        } else {
            lappend pos $a
        }
    }
    return [list $opts $pos]
}

# Every command not modelled is an error (tclsh's own unknown would try auto_load / exec).
rename unknown ::tc::tcl_unknown
proc unknown {args} {
    ::tc::fail "unknown Vivado command '[lindex $args 0]': the stand-in does not model it (add a proc in\
 sw/bitcycle/compile/tclcheck/ if Vivado has it, else fix the spelling)"
}

proc ::tc::need_project {cmd} {
    if {$::tc::project eq {}} { ::tc::fail "$cmd before create_project" }
}

# --- project, filesets, files -------------------------------------------------------------
proc create_project {args} {
    lassign [::tc::opts create_project {-part 1 -force 0 -in_memory 0 -ip 0 -rtl_kernel 0} $args] o pos
    if {[llength $pos] < 1} { ::tc::fail "create_project needs a name" }
    set dir [expr {[llength $pos] > 1 ? [file normalize [lindex $pos 1]] : [file normalize [lindex $pos 0]]}]
    if {![dict exists $o -part]} { ::tc::fail "create_project without -part" }
    if {[file exists $dir/[lindex $pos 0].xpr] && ![dict exists $o -force]} {
        ::tc::fail "create_project: $dir/[lindex $pos 0].xpr exists (use -force)"
    }
    set ::tc::project [dict create name [lindex $pos 0] dir $dir part [dict get $o -part] board_part ""]
    ::tc::record create_project name [lindex $pos 0] part [dict get $o -part]
    return [lindex $pos 0]
}

proc current_project {args} { ::tc::need_project current_project; return [dict get $::tc::project name] }
proc current_fileset {args} {
    lassign [::tc::opts current_fileset {-constrset 0 -simset 0} $args] o pos
    if {[dict exists $o -simset]} { return sim_1 }
    if {[dict exists $o -constrset]} { return constrs_1 }
    return sources_1
}
proc get_filesets {args} {
    lassign [::tc::opts get_filesets {-of_objects 1} $args] o pos
    set all {sources_1 constrs_1 sim_1}
    if {$pos eq {}} { return $all }
    foreach p $pos { if {$p ni $all} { ::tc::fail "get_filesets: no fileset $p" } }
    return $pos
}

proc ::tc::file_kind {path} {
    switch -- [string tolower [file extension $path]] {
        .sv { return SystemVerilog } .v { return Verilog } .svh - .vh { return {Verilog Header} }
        .vhd - .vhdl { return VHDL } .xdc { return XDC } .bd { return {Block Designs} }
        .mem - .dat { return {Memory File} } .tcl { return TCL } .xci { return IP }
        default { return Unknown }
    }
}

proc add_files {args} {
    ::tc::need_project add_files
    lassign [::tc::opts add_files {-norecurse 0 -fileset 1 -of_objects 1 -scan_for_includes 0 -copy_to 1 -force 0} $args] o pos
    set fs [expr {[dict exists $o -fileset] ? [dict get $o -fileset] : "sources_1"}]
    set paths [concat {*}$pos]
    if {$paths eq {}} { ::tc::fail "add_files: no files given (an empty glob?)" }
    set added {}
    foreach p $paths {
        set p [file normalize $p]
        set gen [string map {.srcs/sources_1/bd/ .gen/sources_1/bd/} $p]
        if {[dict exists $::tc::virtual $p]} {
            # generated by an earlier command (make_wrapper): exists in Vivado's project by now
        } elseif {![file exists $p] && $gen ne $p && [dict exists $::tc::virtual $gen]} {
            ::tc::warn "add_files: $p is not written by Vivado >= 2020.2; Vivado 2021+ finds it under .gen (Project 1-1716)"
            set p $gen
        } elseif {![file exists $p]} {
            ::tc::fail "add_files: $p does not exist"
        } elseif {[file isdirectory $p]} {
            if {[dict exists $o -norecurse]} { ::tc::fail "add_files -norecurse: $p is a directory" }
            foreach f [glob -nocomplain -directory $p -types f *] { lappend paths $f }
            continue
        }
        if {[lsearch -exact -index 0 $::tc::files $p] >= 0} {
            ::tc::warn "add_files: $p is already in the project"
            continue
        }
        lappend ::tc::files [list $p $fs [::tc::file_kind $p] 0 [::tc::where]]
        lappend added $p
    }
    return $added
}

proc get_files {args} {
    lassign [::tc::opts get_files {-of_objects 1 -filter 1 -all 0 -compile_order 1 -used_in 1} $args] o pos
    set out {}
    set known [concat [lmap f $::tc::files {lindex $f 0}] [dict keys $::tc::virtual]]
    if {[dict exists $o -filter]} {
        # the stand-in reads FILE_TYPE == X alternatives (every file is used in synthesis)
        set types [lmap {- a b} [regexp -all -inline {FILE_TYPE\s*==\s*(?:"([^"]+)"|(\w+))} [dict get $o -filter]] {expr {$a ne "" ? $a : $b}}]
        if {$types eq {}} { ::tc::fail "get_files -filter {[dict get $o -filter]}: the stand-in models FILE_TYPE == X" }
        set known [lmap f $::tc::files {expr {[lindex $f 2] in $types ? [lindex $f 0] : [continue]}}]
    }
    if {$pos eq {}} { return $known }
    foreach pat [concat {*}$pos] {
        set hits [lsearch -all -inline -glob $known $pat]
        if {$hits eq {}} { set hits [lsearch -all -inline -glob $known */[file tail $pat]] }
        if {$hits eq {} && ![dict exists $o -quiet]} { ::tc::fail "get_files: no file matches $pat" }
        lappend out {*}$hits
    }
    return $out
}

proc update_compile_order {args} {
    lassign [::tc::opts update_compile_order {-fileset 1} $args] o pos
    ::tc::need_project update_compile_order
    return ""
}

# modules defined by the project's HDL files (and by generated wrappers)
proc ::tc::modules {} {
    set out {}
    foreach f $::tc::files {
        lassign $f path fs kind
        if {$kind in {Verilog SystemVerilog} && [file exists $path]} {
            set fh [open $path]; set text [read $fh]; close $fh
            foreach {- m} [regexp -all -inline -line {^\s*module\s+(\w+)} $text] { dict set out $m $path }
        }
    }
    dict for {p what} $::tc::virtual {
        if {[lindex $what 0] eq "wrapper"} { dict set out [lindex $what 1] $p }
    }
    return $out
}

proc ::tc::tcl_file_read {path} {
    set fh [open $path]; set text [read $fh]; close $fh
    return $text
}
