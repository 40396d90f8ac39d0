# Vivado stand-in, part 3: set_property / get_property on projects, filesets, files and cells.
proc ::tc::set_cell_config {cellname key value} {
    set c $::tc::cell($cellname)
    set name [string range $key 7 end]
    if {[dict get $c kind] eq "module"} {
        if {![dict exists $c config $name]} {
            ::tc::fail "set_property $key: module reference [dict get $c ref] ($cellname) has no parameter $name\
 (it has: [join [dict keys [dict get $c config]] {, }])"
        }
        if {![string is integer -strict $value]} { ::tc::fail "set_property $key {$value}: $name needs an integer" }
    } else {
        set ip [dict get $::tc::catalog [dict get $c ip]]
        if {![dict exists $ip config $name]} {
            set close [lsearch -all -inline -nocase -glob [dict keys [dict get $ip config]] *[string range $name 0 5]*]
            ::tc::fail "set_property $key: [dict get $c ip] ($cellname) has no parameter $name[expr {$close ne {} ? " (close: [join $close {, }])" : ""}]"
        }
        if {[dict exists $ip allowed $name] && $value ni [dict get $ip allowed $name]} {
            ::tc::fail "set_property $key {$value}: [dict get $c ip] allows [join [dict get $ip allowed $name] {, }]"
        }
    }
    dict set c config $name $value
    dict set c user $name $value
    set ::tc::cell($cellname) $c
    ::tc::changed
}

proc set_property {args} {
    lassign [::tc::opts set_property {-dict 1 -name 1 -objects 1} $args] o pos
    if {[dict exists $o -dict]} {
        set kv [dict get $o -dict]
        set objs [concat {*}$pos]
    } else {
        if {[llength $pos] < 3} { ::tc::fail "set_property needs <name> <value> <objects>" }
        set kv [lrange $pos 0 1]
        set objs [concat {*}[lrange $pos 2 end]]
    }
    if {[llength $kv] % 2} { ::tc::fail "set_property -dict: odd number of words (a missing value?)" }
    if {$objs eq {}} { ::tc::fail "set_property: no objects (an empty get_* result?)" }
    foreach obj $objs {
        foreach {k v} $kv {
            if {[regexp {^(core|busif|busparam|group|file):} $obj]} {
                ::tc::need_core set_property
                dict lappend ::tc::core properties [list $k $v $obj]
            } elseif {[info exists ::tc::ext([string trimleft $obj /])]} {
                set n [string trimleft $obj /]
                if {$k eq "name"} { ::tc::rename_port $n $v } \
                elseif {[string match CONFIG.* $k]} { dict set ::tc::ext($n) config [string range $k 7 end] $v } \
                else { ::tc::fail "set_property $k on port $obj: not modelled" }
            } elseif {[string match CONFIG.* $k]} {
                set c [string trimleft $obj /]
                if {![info exists ::tc::cell($c)]} { ::tc::fail "set_property $k: '$obj' is not a block design cell" }
                ::tc::set_cell_config $c $k $v
            } elseif {$obj in {sources_1 sim_1 constrs_1}} {
                if {$k ni {top top_lib source_mgmt_mode}} { ::tc::fail "set_property $k on fileset $obj: the stand-in models top" }
                if {$k eq "top"} {
                    if {![dict exists [::tc::modules] $v]} { ::tc::fail "set_property top $v: no added source defines module $v" }
                    dict set ::tc::tops $obj $v
                }
            } elseif {$::tc::project ne {} && $obj eq [dict get $::tc::project name]} {
                if {$k ni {board_part target_language default_lib ip_repo_paths part}} { ::tc::fail "set_property $k on the project: not modelled" }
                if {$k eq "board_part"} {
                    if {![dict exists $::tc::board_parts $v]} {
                        ::tc::fail "set_property board_part $v: no such board file (known: [join [dict keys $::tc::board_parts] {, }])"
                    }
                    if {[dict get $::tc::board_parts $v] ne [dict get $::tc::project part]} {
                        ::tc::fail "set_property board_part $v: that board's device is [dict get $::tc::board_parts $v], the project's part is [dict get $::tc::project part]"
                    }
                }
                dict set ::tc::project $k $v
            } else {
                set i [lsearch -exact -index 0 $::tc::files [file normalize $obj]]
                if {$i < 0} { ::tc::fail "set_property $k: '$obj' is no project, fileset, file or cell" }
                switch -- $k {
                    is_global_include {
                        if {[lindex $::tc::files $i 2] ne "Verilog Header"} { ::tc::fail "set_property is_global_include: $obj is not a Verilog Header" }
                        lset ::tc::files $i 3 [expr {$v in {1 true}}]
                    }
                    file_type { lset ::tc::files $i 2 $v }
                    used_in_synthesis - used_in_simulation - used_in_implementation - library {}
                    default { ::tc::fail "set_property $k on file $obj: not modelled" }
                }
            }
        }
    }
    return ""
}

proc get_property {args} {
    lassign [::tc::opts get_property {} $args] o pos
    lassign $pos k obj
    if {[string match CONFIG.* $k]} {
        set c [string trimleft $obj /]
        set name [string range $k 7 end]
        if {![info exists ::tc::cell($c)] || ![dict exists $::tc::cell($c) config $name]} { ::tc::fail "get_property $k $obj: no such parameter" }
        return [dict get $::tc::cell($c) config $name]
    }
    switch -- $k {
        VLNV { return [dict get $::tc::cell([string trimleft $obj /]) vlnv] }
        NAME { return [lindex [split $obj /] end] }
        top { return [dict get $::tc::tops $obj] }
        DIRECTORY - directory { return [dict get $::tc::project dir] }
        PART - part { return [dict get $::tc::project part] }
    }
    ::tc::fail "get_property $k: not modelled"
}
